package akahu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
	"github.com/go-json-experiment/json/jsontext"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// describe renders a decode result for the golden file.
func describe(env *envelope, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ok success=%v(present=%v) items=%d(present=%v)", env.success, env.hasSuccess, len(env.items), env.hasItems)
	if env.hasNext {
		fmt.Fprintf(&b, " next=%q", env.next)
	} else {
		b.WriteString(" next=null")
	}
	if env.message != "" {
		fmt.Fprintf(&b, " message=%q", env.message)
	}
	for i, it := range env.items {
		fmt.Fprintf(&b, "\n    items[%d]=%s", i, it)
	}
	if env.item != nil {
		fmt.Fprintf(&b, "\n    item=%s", env.item)
	}
	return b.String()
}

func TestDecodeEnvelopeGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/decode/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	sort.Strings(files)
	var out bytes.Buffer
	d := new(jsonscan.Scanner)
	var env envelope
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		derr := decodeEnvelope(d, body, &env)
		fmt.Fprintf(&out, "%s: %s\n", filepath.Base(f), describe(&env, derr))
		if derr == nil {
			checkItemsAlias(t, body, &env)
		}
	}
	golden := filepath.Join("testdata", "decode.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("decode results differ from %s (rerun with -update if intended):\n%s", golden, out.String())
	}
}

// checkItemsAlias asserts the decoder's promises about items: each is a JSON
// object, a sub-slice of the body (no copy), and capped so appending to it
// cannot overwrite the body.
func checkItemsAlias(t testing.TB, body []byte, env *envelope) {
	t.Helper()
	all := env.items
	if env.item != nil {
		all = append(all[:len(all):len(all)], env.item)
	}
	for i, it := range all {
		if len(it) < 2 || it[0] != '{' || it[len(it)-1] != '}' || !jsontext.Value(it).IsValid(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)) {
			t.Fatalf("item %d is not a JSON object: %q", i, it)
		}
		if cap(it) != len(it) {
			t.Errorf("item %d has spare capacity %d; appends would clobber the body", i, cap(it)-len(it))
		}
		if !within(body, it) {
			t.Errorf("item %d does not alias the body", i)
		}
	}
}

// within reports whether sub is a sub-slice of buf (same memory).
func within(buf, sub []byte) bool {
	if len(sub) == 0 {
		return false
	}
	for i := range buf {
		if &buf[i] == &sub[0] {
			return i+len(sub) <= len(buf)
		}
	}
	return false
}

func TestDecodeEnvelopeReuse(t *testing.T) {
	t.Parallel()
	d := new(jsonscan.Scanner)
	var env envelope
	if err := decodeEnvelope(d, []byte(`{"success":true,"items":[{"a":1},{"b":2}],"cursor":{"next":"x"},"message":"m"}`), &env); err != nil {
		t.Fatal(err)
	}
	if err := decodeEnvelope(d, []byte(`{"items":[{"c":3}]}`), &env); err != nil {
		t.Fatal(err)
	}
	if env.hasSuccess || env.hasNext || env.message != "" || len(env.items) != 1 || string(env.items[0]) != `{"c":3}` {
		t.Errorf("state leaked between decodes: %s", describe(&env, nil))
	}
}

func FuzzDecodePage(f *testing.F) {
	files, _ := filepath.Glob("testdata/decode/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add(benchPage(3, 200))
	d := new(jsonscan.Scanner)
	var env envelope
	f.Fuzz(func(t *testing.T, body []byte) {
		err := decodeEnvelope(d, body, &env)
		if err != nil {
			return
		}
		checkItemsAlias(t, body, &env)
		// Anything accepted is JSON the standard library agrees is valid
		// (it, too, tolerates invalid UTF-8 and duplicate names), and so
		// does jsontext with the same tolerances.
		if !json.Valid(body) || !jsontext.Value(body).IsValid(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)) {
			t.Fatalf("accepted a body encoding/json or jsontext rejects: %q", body)
		}
		if env.hasNext && bytes.Count(body, []byte(`"next"`)) == 0 {
			t.Fatalf("cursor from nowhere: %q", body)
		}
	})
}

// benchPage builds a page of n transaction objects of about size bytes each.
func benchPage(n, size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"success":true,"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		start := b.Len()
		fmt.Fprintf(&b, `{"_id":"trans_%025d","_account":"acc_cjld2cjxh0000qzrmn831i7rn","_user":"user_cjld2cjxh0000qzrmn831i7rn","_connection":"conn_cjld2cjxh0000qzrmn831i7rn","created_at":"2024-01-02T03:04:05.678Z","updated_at":"2024-01-02T03:04:05.678Z","date":"2023-12-31T11:00:00.000Z","description":"EFTPOS PURCHASE CAFÉ \"LOCAL\" WELLINGTON","amount":-12.34,"balance":1234.56,"type":"EFTPOS","merchant":{"_id":"merchant_1","name":"Café Local","website":"https://cafe.example"},"category":{"_id":"nzfcc_1","name":"Cafes and restaurants","groups":{"personal_finance":{"_id":"group_1","name":"Lifestyle"}}},"meta":{"particulars":"1234","code":"ABC","reference":"REF","card_suffix":"1234","conversion":{"amount":10,"currency":"AUD","rate":1.0876,"fee":0.5}}`, i)
		for b.Len()-start < size-20 {
			b.WriteString(`,"pad":"xxxxxxxxxx"`)
		}
		b.WriteByte('}')
	}
	b.WriteString(`],"cursor":{"next":"cursor_abcdefghijklmnopqrstuvwxyz"}}`)
	return b.Bytes()
}

func BenchmarkDecodePage(b *testing.B) {
	const items = 100
	body := benchPage(items, 1024)
	d := new(jsonscan.Scanner)
	var env envelope
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeEnvelope(d, body, &env); err != nil {
			b.Fatal(err)
		}
		if len(env.items) != items {
			b.Fatalf("items = %d", len(env.items))
		}
	}
	b.ReportMetric(float64(b.N*items)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(len(body))/items, "B/item")
}

// Decoding a page into a reused envelope allocates nothing but the cursor
// string: the items alias the body and the scratch state is reused.
func TestDecodeEnvelopeAllocs(t *testing.T) {
	body := benchPage(20, 600)
	d := new(jsonscan.Scanner)
	var env envelope
	if err := decodeEnvelope(d, body, &env); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if err := decodeEnvelope(d, body, &env); err != nil || len(env.items) != 20 {
			t.Fatalf("err %v, %d items", err, len(env.items))
		}
	})
	if allocs > 1 {
		t.Errorf("decoding a page allocates %v times (want only the cursor)", allocs)
	}
}

// Every endpoint gets validated items: a syntax error inside one item is
// ErrMalformed naming the item (and retried), whichever endpoint served it.
func TestMalformedItemEachEndpoint(t *testing.T) {
	t.Parallel()
	const (
		badItems = `{"success":true,"items":[{"_id":"acc_1","name":"ok"},{"_id":"acc_2","name": tru}]}`
		badItem  = `{"success":true,"item":{"_id":"user_1","email":"a@b` + "\x01" + `"}}`
	)
	w := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	noop := func(Page) error { return nil }
	for _, tc := range []struct {
		name, body, want string
		call             func(context.Context, *Client) error
	}{
		{"accounts", badItems, "items[1]: invalid character", func(ctx context.Context, c *Client) error { _, err := c.Accounts(ctx, testUser); return err }},
		{"pending", badItems, "items[1]: invalid character", func(ctx context.Context, c *Client) error { _, err := c.Pending(ctx, testUser, "acc_1"); return err }},
		{"all pending", badItems, "items[1]: invalid character", func(ctx context.Context, c *Client) error { _, err := c.AllPending(ctx, testUser); return err }},
		{"transactions", badItems, "items[1]: invalid character", func(ctx context.Context, c *Client) error { return c.Transactions(ctx, testUser, "acc_1", w, noop) }},
		{"all transactions", badItems, "items[1]: invalid character", func(ctx context.Context, c *Client) error { return c.AllTransactions(ctx, testUser, w, noop) }},
		{"me", badItem, `item: invalid character '\x01' in string`, func(ctx context.Context, c *Client) error { _, err := c.Me(ctx, testUser); return err }},
		{"transaction", badItem, `item: invalid character '\x01' in string`, func(ctx context.Context, c *Client) error {
			_, err := c.Transaction(ctx, testUser, "trans_1")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc2 := newTestClient(t, script(status(200, tc.body)))
			err := tc.call(context.Background(), tc2.Client)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrMalformed containing %q", err, tc.want)
			}
			if n := len(tc2.rec.requests()); n != 4 {
				t.Errorf("%d requests, want 4 (a malformed body is retried)", n)
			}
		})
	}
}

// FuzzDecodeItem puts arbitrary bytes where a page's items go: a valid JSON
// object (as jsontext judges it, with the envelope's options) is passed
// through exactly; anything the decoder accepts is valid JSON; a rejection
// of the items names the item.
func FuzzDecodeItem(f *testing.F) {
	for _, s := range []string{`{"_id":"t"}`, `{"a": [1, {"b": null}]} `, `{"a":1,"a":2}`, "{\"d\":\"bad \xff\"}", `{"a":tru}`, `{"a":"\u00"}`, `{}, {}`, `[]`, `{"a":1}}`} {
		f.Add([]byte(s))
	}
	s := new(jsonscan.Scanner)
	var env envelope
	lenient := []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}
	f.Fuzz(func(t *testing.T, item []byte) {
		body := append(append([]byte(`{"success":true,"items":[`), item...), `],"cursor":null}`...)
		err := decodeEnvelope(s, body, &env)
		trimmed := bytes.Trim(item, " \t\r\n")
		if jsontext.Value(item).IsValid(lenient...) && len(trimmed) > 0 && trimmed[0] == '{' {
			if err != nil || len(env.items) != 1 || !bytes.Equal(env.items[0], trimmed) {
				t.Fatalf("valid object %q: err %v, items %q", item, err, env.items)
			}
			return
		}
		if err == nil {
			if !jsontext.Value(body).IsValid(lenient...) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			checkItemsAlias(t, body, &env)
			return
		}
		// A ']' may close the array early; otherwise the error is the item's.
		if !bytes.Contains(item, []byte("]")) && !strings.HasPrefix(err.Error(), "items[") {
			t.Fatalf("error for items %q does not name the item: %v", item, err)
		}
	})
}
