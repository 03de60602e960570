package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

const minimalTx = `{"_id":"trans_1","_user":"user_1","_account":"acc_1","date":"2024-06-30T12:00:00.000Z","amount":-1.5,"description":"x","type":"EFTPOS"}`

func newTxBuilder(t *testing.T, opts Options) *TransactionBuilder {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	b := NewTransactionBuilder(mem, opts)
	t.Cleanup(b.Release)
	return b
}

// oneRow appends item and returns the single resulting row as a map of
// column name to rendered JSON cell.
func oneRow(t *testing.T, b *TransactionBuilder, item string) map[string]string {
	t.Helper()
	if err := b.Append([]byte(item), "NZD"); err != nil {
		t.Fatalf("Append(%s): %v", item, err)
	}
	rec := b.NewRecord()
	defer rec.Release()
	validateRecord(t, rec, Transactions())
	if rec.NumRows() != 1 {
		t.Fatalf("%d rows", rec.NumRows())
	}
	out := map[string]string{}
	for i, f := range rec.Schema().Fields() {
		out[f.Name] = cellJSON(t, rec.Column(i), 0)
	}
	return out
}

func TestDateLocal(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		loc  *time.Location
		date string
		want string
	}{
		{"NZST local midnight, default zone", nil, "2024-06-30T12:00:00.000Z", `"2024-07-01"`},
		{"NZDT local midnight, default zone", nil, "2023-12-31T11:00:00.000Z", `"2024-01-01"`},
		{"NZDT explicit Auckland", defaultLocation, "2024-01-31T11:00:00.000Z", `"2024-02-01"`},
		{"other zone: New York", ny, "2023-12-31T11:00:00.000Z", `"2023-12-31"`},
		{"other zone: New York midnight", ny, "2024-01-01T05:00:00.000Z", `"2024-01-01"`},
		{"other zone: UTC", time.UTC, "2024-06-30T12:00:00.000Z", `"2024-06-30"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTxBuilder(t, Options{Location: tc.loc, RunID: "r", ExtractedAt: testExtractedAt})
			item := strings.Replace(minimalTx, "2024-06-30T12:00:00.000Z", tc.date, 1)
			row := oneRow(t, b, item)
			if row["date_local"] != tc.want {
				t.Fatalf("date_local = %s, want %s", row["date_local"], tc.want)
			}
			if want := `"` + strings.Replace(tc.date, ".000Z", ".000000Z", 1) + `"`; row["date"] != want {
				t.Fatalf("date = %s, want %s", row["date"], want)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	for _, tc := range []struct {
		name, item string
		want       error
		mention    []string // substrings the error must contain
	}{
		{"not an object: array", `[]`, ErrInvalid, []string{"not a JSON object"}},
		{"not an object: string", `"trans_1"`, ErrInvalid, nil},
		{"not an object: null", `null`, ErrInvalid, nil},
		{"empty input", ``, ErrInvalid, nil},
		{"truncated", `{"_id":"trans_1","amount":1`, ErrInvalid, []string{"trans_1"}},
		{"trailing data", minimalTx + `{}`, ErrInvalid, []string{"trailing", "trans_1"}},
		{"duplicate name", `{"_id":"trans_1","_id":"trans_2"}`, ErrInvalid, []string{"duplicate"}},
		{"missing _id", `{"_user":"u","_account":"a","date":"2024-01-01T00:00:00Z","amount":1}`, ErrInvalid, []string{`"_id"`, "no _id"}},
		{"missing _user", `{"_id":"trans_9","_account":"a","date":"2024-01-01T00:00:00Z","amount":1}`, ErrInvalid, []string{`"_user"`, "trans_9"}},
		{"missing _account", `{"_id":"trans_9","_user":"u","date":"2024-01-01T00:00:00Z","amount":1}`, ErrInvalid, []string{`"_account"`, "trans_9"}},
		{"missing date", `{"_id":"trans_9","_user":"u","_account":"a","amount":1}`, ErrInvalid, []string{`"date"`, "trans_9"}},
		{"missing amount", `{"_id":"trans_9","_user":"u","_account":"a","date":"2024-01-01T00:00:00Z"}`, ErrInvalid, []string{`"amount"`, "trans_9"}},
		{"null amount", `{"_id":"trans_9","_user":"u","_account":"a","date":"2024-01-01T00:00:00Z","amount":null}`, ErrInvalid, []string{`"amount"`}},
		{"bad date, _id after it", `{"date":"31/12/2023","_id":"trans_9","_user":"u","_account":"a","amount":1}`, ErrInvalid, []string{`"date"`, "trans_9", "31/12/2023"}},
		{"bad updated_at", strings.Replace(minimalTx, `"amount"`, `"updated_at":"yesterday","amount"`, 1), ErrInvalid, []string{`"updated_at"`, "trans_1"}},
		{"amount too precise", strings.Replace(minimalTx, `-1.5`, `-1.23456`, 1), ErrInvalid, []string{`"amount"`, "trans_1", "fractional"}},
		{"amount overflow", strings.Replace(minimalTx, `-1.5`, `1e30`, 1), ErrOverflow, []string{`"amount"`, "trans_1"}},
		{"amount bool", strings.Replace(minimalTx, `-1.5`, `true`, 1), ErrInvalid, []string{`"amount"`}},
		{"amount garbage string", strings.Replace(minimalTx, `-1.5`, `"12 dollars"`, 1), ErrInvalid, []string{`"amount"`}},
		{"balance overflow", strings.Replace(minimalTx, `"amount"`, `"balance":123456789012345678,"amount"`, 1), ErrOverflow, []string{`"balance"`}},
		{"rate too precise", strings.Replace(minimalTx, `"amount"`, `"meta":{"conversion":{"rate":0.123456789012}},"amount"`, 1), ErrInvalid, []string{`"meta.conversion.rate"`}},
		{"description number", strings.Replace(minimalTx, `"x"`, `5`, 1), ErrInvalid, []string{`"description"`}},
		{"merchant not object", strings.Replace(minimalTx, `"amount"`, `"merchant":"Countdown","amount"`, 1), ErrInvalid, []string{`"merchant"`}},
		{"merchant name number", strings.Replace(minimalTx, `"amount"`, `"merchant":{"name":1},"amount"`, 1), ErrInvalid, []string{`"merchant.name"`}},
		{"invalid UTF-8", strings.Replace(minimalTx, `"x"`, "\"caf\xe9\"", 1), ErrInvalid, []string{"UTF-8"}},
		{"invalid UTF-8 in unknown field", strings.Replace(minimalTx, `"amount"`, "\"raw\":{\"n\":\"\xff\"},\"amount\"", 1), ErrInvalid, []string{"UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTxBuilder(t, testOptions())
			err := b.Append([]byte(tc.item), "NZD")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if b.Len() != 0 {
				t.Fatalf("Len = %d after a failed Append", b.Len())
			}
		})
	}
}

func TestAppendMissingCurrency(t *testing.T) {
	b := newTxBuilder(t, testOptions())
	if err := b.Append([]byte(minimalTx), ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "currency") {
		t.Fatalf("err = %v", err)
	}
	if b.Len() != 0 {
		t.Fatal("row appended")
	}
}

// A failed Append leaves no partial row: the rows around it come out intact.
func TestFailedAppendIsAtomic(t *testing.T) {
	b := newTxBuilder(t, testOptions())
	good2 := strings.Replace(minimalTx, "trans_1", "trans_2", 1)
	// amount parses and merchant fills columns before the bad balance is seen
	bad := `{"_id":"trans_bad","_user":"u","_account":"a","date":"2024-01-01T00:00:00Z","amount":1,"merchant":{"name":"M"},"balance":"oops"}`
	if err := b.Append([]byte(minimalTx), "NZD"); err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte(bad), "NZD"); err == nil {
		t.Fatal("bad item accepted")
	}
	if err := b.Append([]byte(good2), "NZD"); err != nil {
		t.Fatal(err)
	}
	rec := b.NewRecord()
	defer rec.Release()
	validateRecord(t, rec, Transactions())
	ids := rec.Column(txID).(*array.String)
	if rec.NumRows() != 2 || ids.Value(0) != "trans_1" || ids.Value(1) != "trans_2" {
		t.Fatalf("rows: %s", dumpRecord(t, rec))
	}
	if rec.Column(txMerchantName).NullN() != 2 {
		t.Fatal("merchant of the failed row leaked into the batch")
	}
}

func TestAmountAsStringTolerated(t *testing.T) {
	b := newTxBuilder(t, testOptions())
	num := oneRow(t, b, strings.Replace(minimalTx, `-1.5`, `-11.50`, 1))
	str := oneRow(t, b, strings.Replace(minimalTx, `-1.5`, `"-11.50"`, 1))
	if num["amount"] != `"-11.5000"` || str["amount"] != num["amount"] {
		t.Fatalf("number %s, string %s", num["amount"], str["amount"])
	}
}

func TestExtraKeepsUnknownFieldsByteExact(t *testing.T) {
	b := newTxBuilder(t, testOptions())
	item := `{"zeta" : {"b" : [1 ,2.50,  "x\u00e9"] },"_id":"trans_1","_user":"user_1","_account":"acc_1",` +
		`"hash":"h1","date":"2024-06-30T12:00:00.000Z","amount":-1.5,"_migrated":"trans_0",` +
		`"merchant":{"_id":"m","name":"N","business_number":"9429"},` +
		`"category":{"_id":"c","name":"C","components":[{"x":1}],"groups":{"personal_finance":{"_id":"g","name":"G","extra_pf":true},"other":{"_id":"o"}}},` +
		`"meta":{"logo":"https://l","conversion":{"amount":1,"currency":"AUD","rate":1.1,"fee":0.5,"src":"v"}},` +
		`"n\u0061me_esc":1e2,"alpha":-0.0}`
	row := oneRow(t, b, item)
	want := `{"_migrated":"trans_0","alpha":-0.0,"category":{"components":[{"x":1}],"groups":{"other":{"_id":"o"},"personal_finance":{"extra_pf":true}}},` +
		`"hash":"h1","merchant":{"business_number":"9429"},"meta":{"conversion":{"src":"v"},"logo":"https://l"},` +
		`"n\u0061me_esc":1e2,"zeta":{"b" : [1 ,2.50,  "x\u00e9"] }}`
	var got string
	if err := jsonUnmarshalString(row["extra"], &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("extra\n got %s\nwant %s", got, want)
	}
	for col, v := range map[string]string{
		"merchant_id": `"m"`, "merchant_name": `"N"`, "category_group_id": `"g"`, "category_group_name": `"G"`,
		"conversion_amount": `"1.0000"`, "conversion_rate": `"1.1000000000"`, "conversion_fee": `"0.5000"`,
		"conversion_currency": `"AUD"`, "description": `""`, "type": `""`,
	} {
		if row[col] != v {
			t.Errorf("%s = %s, want %s", col, row[col], v)
		}
	}
}

func TestEnrichmentNullRows(t *testing.T) {
	b := newTxBuilder(t, testOptions())
	for _, item := range []string{
		minimalTx,
		strings.Replace(minimalTx, `"amount"`, `"merchant":null,"category":null,"meta":null,"balance":null,"_connection":null,"amount"`, 1),
		strings.Replace(minimalTx, `"amount"`, `"merchant":{},"category":{"groups":{}},"meta":{"conversion":null},"amount"`, 1),
	} {
		row := oneRow(t, b, item)
		for _, col := range []string{"connection_id", "created_at", "updated_at", "balance", "merchant_id", "merchant_name",
			"merchant_website", "category_id", "category_name", "category_group_id", "category_group_name", "particulars",
			"code", "reference", "other_account", "card_suffix", "conversion_amount", "conversion_currency",
			"conversion_rate", "conversion_fee", "extra"} {
			if row[col] != "null" {
				t.Errorf("%s: %s = %s, want null", item, col, row[col])
			}
		}
		if row["_run_id"] != `"r"` && row["_run_id"] != `"run_20240701T020304Z"` {
			t.Errorf("_run_id = %s", row["_run_id"])
		}
	}
}

// Builders reuse their buffers across NewRecord calls and give identical
// results to a fresh builder.
func TestBuilderReuseAcrossRecords(t *testing.T) {
	items := syntheticItems(250, 7)
	b := newTxBuilder(t, testOptions())
	var first []byte
	for round := 0; round < 4; round++ {
		for _, it := range items {
			if err := b.Append(it, "NZD"); err != nil {
				t.Fatal(err)
			}
		}
		if b.Len() != len(items) {
			t.Fatalf("Len = %d", b.Len())
		}
		rec := b.NewRecord()
		validateRecord(t, rec, Transactions())
		got := dumpRecord(t, rec)
		rec.Release()
		if b.Len() != 0 {
			t.Fatal("NewRecord did not reset")
		}
		if round == 0 {
			first = got
			continue
		}
		if string(got) != string(first) {
			t.Fatalf("round %d differs from round 0", round)
		}
	}
	fresh := newTxBuilder(t, testOptions())
	for _, it := range items {
		if err := fresh.Append(it, "NZD"); err != nil {
			t.Fatal(err)
		}
	}
	rec := fresh.NewRecord()
	defer rec.Release()
	if string(dumpRecord(t, rec)) != string(first) {
		t.Fatal("reused builder differs from a fresh one")
	}
	// An empty batch is a valid, empty record.
	empty := b.NewRecord()
	defer empty.Release()
	if empty.NumRows() != 0 || !empty.Schema().Equal(Transactions()) {
		t.Fatal("empty record wrong")
	}
}

func TestSchemasCarryVersionAndDictionaryHints(t *testing.T) {
	for name, s := range map[string]*arrow.Schema{"tx": Transactions(), "pending": Pending(), "accounts": Accounts(), "deletions": Deletions()} {
		md := s.Metadata()
		if v, ok := md.GetValue(MetadataKeyVersion); !ok || v != "1" {
			t.Errorf("%s: version metadata %q %v", name, v, ok)
		}
		for _, f := range s.Fields() {
			if f.Name == "user_id" || f.Name == "currency" || f.Name == "type" {
				if v, ok := f.Metadata.GetValue(MetadataKeyDictionary); !ok || v != "true" {
					t.Errorf("%s.%s lacks the dictionary hint", name, f.Name)
				}
			}
			if f.Name == "id" || f.Name == "description" || f.Name == "extra" {
				if _, ok := f.Metadata.GetValue(MetadataKeyDictionary); ok {
					t.Errorf("%s.%s is high-cardinality but hinted", name, f.Name)
				}
			}
		}
	}
	tx, del := Transactions(), Deletions()
	if del.NumFields() != tx.NumFields()+3 {
		t.Fatal("Deletions is not Transactions + 3")
	}
	for i, f := range tx.Fields() {
		if !f.Equal(del.Field(i)) {
			t.Fatalf("Deletions field %d = %v, want %v", i, del.Field(i), f)
		}
	}
	want := "id user_id account_id connection_id date date_local created_at updated_at description amount balance currency type merchant_id merchant_name merchant_website category_id category_name category_group_id category_group_name particulars code reference other_account card_suffix conversion_amount conversion_currency conversion_rate conversion_fee extra _run_id _extracted_at"
	var names []string
	for _, f := range tx.Fields() {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("column order\n got %s\nwant %s", got, want)
	}
}

func TestPendingBuilder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewPendingBuilder(mem, testOptions())
	defer b.Release()
	base := `{"_user":"user_1","_account":"acc_1","date":"2024-06-30T12:00:00.000Z","description":"D","type":"EFTPOS","amount":AMT}`
	for _, amt := range []string{`-11.50`, `"-11.50"`, `-1150e-2`} {
		if err := b.Append([]byte(strings.Replace(base, "AMT", amt, 1)), "NZD"); err != nil {
			t.Fatal(err)
		}
	}
	// settled-only fields are extra on a pending item
	withID := strings.Replace(base, "AMT", `1,"_id":"x","merchant":{"name":"M"},"meta":{"conversion":{"rate":1}}`, 1)
	if err := b.Append([]byte(withID), "NZD"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(base, `"_user":"user_1",`, "", 1),
		strings.Replace(base, "AMT", `"-11.5.0"`, 1),
		strings.Replace(base, "AMT", `null`, 1),
	} {
		cerr := b.Check([]byte(bad), "NZD")
		err := b.Append([]byte(bad), "NZD")
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: err = %v", bad, err)
		}
		if cerr == nil || cerr.Error() != err.Error() {
			t.Fatalf("%s: Check says %v, Append %v", bad, cerr, err)
		}
		if strings.Contains(bad, "acc_1") && !strings.Contains(err.Error(), "acc_1") {
			t.Fatalf("error %v does not name the account", err)
		}
	}
	if err := b.Check([]byte(withID), "NZD"); err != nil {
		t.Fatalf("Check of a good item: %v", err)
	}
	if err := b.Check([]byte(withID), ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Check without a currency: %v", err)
	}
	if b.Len() != 4 {
		t.Fatalf("Check appended: %d rows, want 4", b.Len())
	}
	rec := b.NewRecord()
	defer rec.Release()
	validateRecord(t, rec, Pending())
	amounts := rec.Column(pdAmount).(*array.Decimal128)
	for i := 0; i < 3; i++ {
		if got := amounts.Value(i).ToString(4); got != "-11.5000" {
			t.Fatalf("row %d amount %s", i, got)
		}
	}
	if got := rec.Column(pdExtra).(*array.String).Value(3); got != `{"_id":"x","merchant":{"name":"M"},"meta":{"conversion":{"rate":1}}}` {
		t.Fatalf("pending extra %s", got)
	}
	if got := rec.Column(pdDateLocal).(*array.Date32).Value(0).ToTime().Format("2006-01-02"); got != "2024-07-01" {
		t.Fatalf("pending date_local %s", got)
	}
}

func TestAccountBuilder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	// 2024-06-30T13:00Z is 1 July in Auckland: the snapshot date is local.
	b := NewAccountBuilder(mem, Options{RunID: "r", ExtractedAt: time.Date(2024, 6, 30, 13, 0, 0, 0, time.UTC)})
	defer b.Release()
	ok := `{"_id":"acc_2","_authorisation":"auth_1","connection":{"_id":"conn_1","name":"ASB"},"name":"Everyday","status":"INACTIVE",` +
		`"type":"CHECKING","attributes":["TRANSFER_TO","PAYMENT_FROM","TRANSACTIONS"],"balance":{"currency":"NZD","current":-12.3,"limit":"5000","overdrawn":true},"_credentials":"creds_1"}`
	if err := b.Append([]byte(ok), "user_1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ item, user, mention string }{
		{`{"name":"x"}`, "user_1", `"_id"`},
		{ok, "", "userID"},
		{strings.Replace(ok, `-12.3`, `-12.34567`, 1), "user_1", `"balance.current"`},
		{strings.Replace(ok, `true`, `"yes"`, 1), "user_1", `"balance.overdrawn"`},
		{strings.Replace(ok, `"TRANSFER_TO"`, `7`, 1), "user_1", `"attributes"`},
		{`[]`, "user_1", "not a JSON object"},
	} {
		err := b.Append([]byte(tc.item), tc.user)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: err = %v, want mention of %s", tc.item, err, tc.mention)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	validateRecord(t, rec, Accounts())
	got := string(dumpRecord(t, rec))
	for _, want := range []string{`"snapshot_date":"2024-07-01"`, `"attributes":"PAYMENT_FROM,TRANSACTIONS,TRANSFER_TO"`,
		`"balance_current":"-12.3000"`, `"balance_limit":"5000.0000"`, `"balance_available":null`, `"balance_overdrawn":true`,
		`"status":"INACTIVE"`, `"extra":"{\"_credentials\":\"creds_1\"}"`, `"refreshed_meta":null`} {
		if !strings.Contains(got, want) {
			t.Errorf("row lacks %s:\n%s", want, got)
		}
	}
	if rec.NumRows() != 1 {
		t.Fatalf("%d rows", rec.NumRows())
	}
}

// AppendOf hands the item's _account to the caller without allocating a
// string per item: a page costs no more allocations than with Append.
func TestAppendOfAllocsLikeAppend(t *testing.T) {
	items := syntheticItems(100, 7)                                    // three accounts, interleaved
	b := NewTransactionBuilder(memory.NewGoAllocator(), testOptions()) // a checked allocator allocates as it tracks
	defer b.Release()
	currency := func(id string) (string, bool) { return "NZD", strings.HasPrefix(id, "acc_") }
	page := func(of bool) {
		for _, it := range items {
			var err error
			if of {
				_, err = b.AppendOf(it, currency)
			} else {
				err = b.Append(it, "NZD")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		b.NewRecord().Release()
	}
	page(true) // warm up: buffers sized by the first batch
	page(false)
	withAppend := testing.AllocsPerRun(20, func() { page(false) })
	withAppendOf := testing.AllocsPerRun(20, func() { page(true) })
	if withAppendOf > withAppend {
		t.Errorf("a page of 100 items allocates %v times with AppendOf, %v with Append", withAppendOf, withAppend)
	}
}

// A builder's reader is reused across items: each row, extra included, is
// what a fresh builder makes of the item alone, whatever came before it.
func TestReusedReaderRowsLikeFresh(t *testing.T) {
	t.Parallel()
	conv := func(unknownIn string) string {
		return strings.Replace(minimalTx, `"amount"`, `"merchant":{"name":"m"`+unknownIn+`},"meta":{"conversion":{"rate":0.5,"z":1}},"category":{"groups":{"personal_finance":{"name":"g","q":2}}},"amount"`, 1)
	}
	items := []string{conv(`,"logo":"l"`), minimalTx, conv(""), conv(`,"logo":"k"`), strings.Replace(minimalTx, `"amount"`, `"top":true,"amount"`, 1), conv("")}
	for _, it := range loadItems(t, local("enriched_transactions.json")) {
		items = append(items, string(it), minimalTx)
	}
	reused := newTxBuilder(t, testOptions())
	for i, it := range items {
		if err := reused.Append([]byte(it), "NZD"); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	rec := reused.NewRecord()
	defer rec.Release()
	got := splitLines(dumpRecord(t, rec))
	for i, it := range items {
		want := oneRow(t, newTxBuilder(t, testOptions()), it)
		var row map[string]json.RawMessage
		if err := json.Unmarshal([]byte(got[i]), &row); err != nil {
			t.Fatalf("row %d: %v: %s", i, err, got[i])
		}
		for col, w := range want {
			if string(row[col]) != w {
				t.Errorf("row %d %s = %s, alone %s", i, col, row[col], w)
			}
		}
	}
}
