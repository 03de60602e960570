package parquet

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// The test schema mirrors docs/design.md's Transactions schema in kind: utf8
// columns (some dictionary hinted), UTC microsecond timestamps, date32,
// decimal128(18,4) money and a decimal128(18,10) rate, bool and int64;
// nullable and non-null fields. It does not depend on package schema.
var (
	testMoney = &arrow.Decimal128Type{Precision: 18, Scale: 4}
	testRate  = &arrow.Decimal128Type{Precision: 18, Scale: 10}
	testTS    = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	dictMD    = arrow.NewMetadata([]string{FieldMetadataDictionary}, []string{"true"})
)

func testSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "user_id", Type: arrow.BinaryTypes.String, Metadata: dictMD},
		{Name: "account_id", Type: arrow.BinaryTypes.String, Metadata: dictMD},
		{Name: "date", Type: testTS},
		{Name: "date_local", Type: arrow.FixedWidthTypes.Date32},
		{Name: "updated_at", Type: testTS, Nullable: true},
		{Name: "description", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: testMoney},
		{Name: "balance", Type: testMoney, Nullable: true},
		{Name: "currency", Type: arrow.BinaryTypes.String, Metadata: dictMD},
		{Name: "type", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: dictMD},
		{Name: "merchant_name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "category_name", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: dictMD},
		{Name: "conversion_rate", Type: testRate, Nullable: true},
		{Name: "conversion_date", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "is_transfer", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "is_settled", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "sequence", Type: arrow.PrimitiveTypes.Int64},
		{Name: "page_index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "_extracted_at", Type: testTS},
	}, func() *arrow.Metadata {
		md := arrow.NewMetadata([]string{"akahu_parquet.schema_version", "akahu_parquet.table"}, []string{"1", "transactions"})
		return &md
	}())
}

const (
	maxDec18 = 999999999999999999
	// epoch and 2100-01-01T00:00:00Z in microseconds
	tsEpoch = 0
	ts2100  = 4102444800 * 1000000
)

var (
	types      = []string{"DEBIT", "CREDIT", "EFTPOS", "TRANSFER", "PAYMENT"}
	categories = []string{"Groceries", "Cafés & restaurants", "Transport", "Utilities"}
	unicode    = []string{"Café Māori kai 🍣", "Ōtautahi — Ōtepoti", "日本語テキスト", "emoji 👩‍👩‍👧‍👦 family", "", "tab\tand\nnewline", "zero\x00byte"}
)

// testRecord builds n deterministic rows starting at row number start.
// Every nullable column has nulls; the first rows carry the extreme
// values the round trip must preserve.
func testRecord(mem memory.Allocator, start, n int) arrow.Record {
	b := array.NewRecordBuilder(mem, testSchema())
	defer b.Release()
	str := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	ts := func(i int) *array.TimestampBuilder { return b.Field(i).(*array.TimestampBuilder) }
	dt := func(i int) *array.Date32Builder { return b.Field(i).(*array.Date32Builder) }
	dec := func(i int) *array.Decimal128Builder { return b.Field(i).(*array.Decimal128Builder) }
	bl := func(i int) *array.BooleanBuilder { return b.Field(i).(*array.BooleanBuilder) }
	i64 := func(i int) *array.Int64Builder { return b.Field(i).(*array.Int64Builder) }
	for k := 0; k < n; k++ {
		r := start + k
		str(0).Append(fmt.Sprintf("trans_%012d", r))
		str(1).Append(fmt.Sprintf("user_%d", r%7))
		str(2).Append(fmt.Sprintf("acc_%d", r%23))
		date := int64(1_700_000_000_000_000) + int64(r)*37_000_000
		switch r {
		case 0:
			date = tsEpoch
		case 1:
			date = ts2100
		case 2:
			date = -86400 * 1000000 * 365 // 1969
		}
		ts(3).Append(arrow.Timestamp(date))
		day := arrow.Date32(19_700 + r/500)
		switch r {
		case 0:
			day = 0
		case 1:
			day = -25567 // 1900-01-01
		case 2:
			day = 47482 // 2100-01-01
		}
		dt(4).Append(day)
		if r%5 == 0 {
			ts(5).AppendNull()
		} else {
			ts(5).Append(arrow.Timestamp(date + 1))
		}
		if r%3 == 0 {
			str(6).Append(unicode[r%len(unicode)])
		} else {
			str(6).Append(fmt.Sprintf("POS W/D %d COUNTDOWN %d", r%991, r))
		}
		amount := decimal128.FromI64(int64(r%200000-100000) * 137)
		switch r {
		case 0:
			amount = decimal128.FromI64(maxDec18)
		case 1:
			amount = decimal128.FromI64(-maxDec18)
		case 2:
			amount = decimal128.FromI64(1) // 0.0001
		}
		dec(7).Append(amount)
		if r%4 == 1 {
			dec(8).AppendNull()
		} else {
			dec(8).Append(decimal128.FromI64(int64(r) * 10_000))
		}
		str(9).Append("NZD")
		if r%6 == 2 {
			str(10).AppendNull()
		} else {
			str(10).Append(types[r%len(types)])
		}
		if r%2 == 0 {
			str(11).AppendNull()
		} else {
			str(11).Append(fmt.Sprintf("Merchant %d Ltd", r%313))
		}
		if r%3 == 1 {
			str(12).AppendNull()
		} else {
			str(12).Append(categories[r%len(categories)])
		}
		switch {
		case r == 0:
			dec(13).Append(decimal128.FromI64(maxDec18))
		case r == 1:
			dec(13).Append(decimal128.FromI64(-maxDec18))
		case r%9 != 0:
			dec(13).AppendNull()
		default:
			dec(13).Append(decimal128.FromI64(6_123_456_789 + int64(r)))
		}
		if r%9 == 0 {
			dt(14).Append(day - 2)
		} else {
			dt(14).AppendNull()
		}
		if r%7 == 3 {
			bl(15).AppendNull()
		} else {
			bl(15).Append(r%2 == 0)
		}
		bl(16).Append(r%11 != 0)
		i64(17).Append(int64(r) - 1<<40)
		if r%8 == 5 {
			i64(18).AppendNull()
		} else {
			i64(18).Append(int64(r / 100))
		}
		ts(19).Append(arrow.Timestamp(1_750_000_000_000_000))
	}
	return b.NewRecord()
}

// writeBytes writes recs with opts and fails the test on error.
func writeBytes(t testing.TB, sch *arrow.Schema, recs []arrow.Record, opts ...Option) ([]byte, FileInfo) {
	t.Helper()
	var buf bytes.Buffer
	info, err := Write(&buf, sch, recs, opts...)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes(), info
}

// concat returns the concatenation of column ci over recs.
func concat(t testing.TB, mem memory.Allocator, recs []arrow.Record, ci int) arrow.Array {
	t.Helper()
	parts := make([]arrow.Array, len(recs))
	for i, r := range recs {
		parts[i] = r.Column(ci)
	}
	a, err := array.Concatenate(parts, mem)
	if err != nil {
		t.Fatalf("concatenate column %d: %v", ci, err)
	}
	return a
}

// assertSameRows fails unless got and want hold equal columns (by name and
// values) in the order of wantSch's fields restricted to names.
func assertSameRows(t *testing.T, mem memory.Allocator, want []arrow.Record, wantSch *arrow.Schema, got []arrow.Record, gotSch *arrow.Schema) {
	t.Helper()
	var wantRows, gotRows int64
	for _, r := range want {
		wantRows += r.NumRows()
	}
	for _, r := range got {
		gotRows += r.NumRows()
	}
	if wantRows != gotRows {
		t.Fatalf("rows: got %d, want %d", gotRows, wantRows)
	}
	for gi, f := range gotSch.Fields() {
		wi := wantSch.FieldIndices(f.Name)
		if len(wi) != 1 {
			t.Fatalf("column %q not in the input", f.Name)
		}
		w := concat(t, mem, want, wi[0])
		g := concat(t, mem, got, gi)
		if !array.Equal(w, g) {
			t.Errorf("column %q differs:\n got %v\nwant %v", f.Name, trunc(g), trunc(w))
		}
		w.Release()
		g.Release()
	}
}

func trunc(a arrow.Array) string {
	if a.Len() > 8 {
		s := array.NewSlice(a, 0, 8)
		defer s.Release()
		return s.String() + " ..."
	}
	return a.String()
}

func releaseAll(recs []arrow.Record) {
	for _, r := range recs {
		r.Release()
	}
}

var _ = time.UTC
