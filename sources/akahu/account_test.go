package akahu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// accountSeeds are account objects: the usual shape, and the corners of
// encoding/json's rules the fast path must match or hand over.
var accountSeeds = []string{
	`{"_id":"acc_1","_authorisation":"auth_1","connection":{"_id":"conn_1","name":"Kiwibank","logo":"x"},"name":"Everyday","status":"ACTIVE","type":"CHECKING","attributes":["TRANSACTIONS","PAYMENT_FROM"],"balance":{"current":1.5,"currency":"NZD","overdrawn":false},"refreshed":{"balance":"2026-02-01T10:00:00.000Z","transactions":"2026-02-01T10:00:00.123Z"},"meta":{"holder":"A"}}`,
	`{"_id":"acc_1","connection":"conn_old","attributes":[],"balance":null,"refreshed":null}`,
	`{"_id":"acc_1","connection":null,"attributes":null,"name":null}`,
	`{"_id":"acc_1","attributes":["A",null,"B"]}`,
	`{"_id":"acc_1","refreshed":{"transactions":"yesterday"}}`,
	`{"_id":"acc_1","refreshed":{"transactions":5,"meta":{}}}`,
	`{"_id":"acc_1","refreshed":{"transactions":"2026-02-01T10:00:00+13:00"}}`,
	`{"_id":""}`,
	`{"name":"no id"}`,
	`{"_id":"acc_1","_ID":"acc_2"}`,
	`{"_id":"acc_1","NAME":"upper"}`,
	`{"_id":"acc_1","ſtatus":"long s"}`,
	`{"_id":"acc_1","name":"a","name":"b"}`,
	`{"_id":"acc_1","name":"a","name":null}`,
	`{"_id":"acc_1","balance":{"currency":"NZD"},"balance":{"current":1}}`,
	`{"_id":"acc_1","name":"caf\u00e9 \"q\""}`,
	`{"_id":"acc_1","name":"bad ` + "\xff" + `"}`,
	`{"_id":"acc_1","n\u0061me":"escaped name"}`,
	`{"_id":"acc_1","name":5}`,
	`{"_id":"acc_1","attributes":"TRANSACTIONS"}`,
	`{"_id":"acc_1","attributes":[1]}`,
	`{"_id":"acc_1","connection":5}`,
	`{"_id":"acc_1","connection":{"_id":5}}`,
	`{"_id":"acc_1","connection":{"_ID":"c","Name":"N"}}`,
	`{"_id":"acc_1","balance":{"currency":1}}`,
	`{"_id":"acc_1","balance":[]}`,
	`{"_id":"acc_1","refreshed":"2026-02-01T10:00:00Z"}`,
	`{"_id":"acc_1"} x`,
	`{"_id":"acc_1",}`,
	`["acc_1"]`,
}

// sameDecode fails t unless decodeAccount and decodeAccountJSON agree on raw.
func sameDecode(t *testing.T, s *jsonscan.Scanner, raw []byte) {
	t.Helper()
	got, gerr := decodeAccount(s, raw)
	want, werr := decodeAccountJSON(raw)
	if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("%s: error %v, encoding/json's %v", raw, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %#v\nwant %#v", raw, got, want)
	}
}

// TestDecodeAccountAsEncodingJSON: the fast decoder of accounts types every field
// as encoding/json does (case-insensitive and repeated names, nulls, escapes,
// invalid UTF-8, wrong types, connection as a string), errors included, and keeps
// the object as served in Raw; the usual shape takes the fast path.
func TestDecodeAccountAsEncodingJSON(t *testing.T) {
	s := new(jsonscan.Scanner)
	for _, raw := range append(accountSeeds, guideAccounts(t)...) {
		sameDecode(t, s, []byte(raw))
	}
	if _, ok := fastAccount(s, []byte(accountSeeds[0])); !ok {
		t.Errorf("the usual account shape left the fast path")
	}
	for _, raw := range guideAccounts(t) {
		if _, ok := fastAccount(s, []byte(raw)); !ok {
			t.Errorf("a guide's account left the fast path: %s", raw)
		}
	}
}

// TestDecodeAccountAllocations: decoding an account of the usual shape allocates
// the strings it keeps (10 here), the attribute list and no more than one other
// value; encoding/json's reflection made it 32 allocations.
func TestDecodeAccountAllocations(t *testing.T) {
	s := new(jsonscan.Scanner)
	raw := []byte(accountSeeds[0])
	if got := testing.AllocsPerRun(100, func() { _, _ = decodeAccount(s, raw) }); got > 12 {
		t.Errorf("decodeAccount: %v allocations, want at most 12", got)
	}
}

// FuzzDecodeAccount: decodeAccount and encoding/json agree on any input.
func FuzzDecodeAccount(f *testing.F) {
	for _, raw := range accountSeeds {
		f.Add([]byte(raw))
	}
	for _, raw := range guideAccounts(f) {
		f.Add([]byte(raw))
	}
	s := new(jsonscan.Scanner)
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameDecode(t, s, raw)
	})
}

// guideAccounts returns the accounts of Akahu's published guides.
func guideAccounts(tb testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "akahu", "guides", "*accounts*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("guides: %v (%d files)", err, len(files))
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var page struct{ Items []json.RawMessage }
		if err := json.Unmarshal(b, &page); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		for _, it := range page.Items {
			out = append(out, string(it))
		}
	}
	return out
}
