package akahutest

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// goldenOptions is a small population whose served bytes are pinned.
var goldenOptions = Options{
	Seed: 42, Users: 2, AccountsPerUser: 4, TxPerAccountPerMonth: 20, PageSize: 6,
	From: time.Date(2026, 9, 1, 0, 0, 0, 0, auckland), To: time.Date(2026, 11, 20, 0, 0, 0, 0, auckland),
}

func TestGoldenPopulation(t *testing.T) {
	s := NewServer(goldenOptions)
	defer s.Close()
	u := s.Users()[0]
	var out bytes.Buffer
	add := func(name string, body []byte) {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: invalid JSON: %v", name, err)
		}
		out.WriteString("== " + name + "\n")
		out.Write(body)
		out.WriteString("\n")
	}
	add("GET /me", get(t, s, u.Token, "/me", nil).body)
	add("GET /accounts", get(t, s, u.Token, "/accounts", nil).body)
	q := url.Values{"start": {"2026-08-31"}, "end": {"2026-11-21"}}
	first := get(t, s, u.Token, "/transactions", q)
	add("GET /transactions first page", first.body)
	add("GET /accounts/{0}/transactions first page", get(t, s, u.Token, "/accounts/"+s.AccountIDs(u.ID)[0]+"/transactions", q).body)
	add("GET /transactions/pending", get(t, s, u.Token, "/transactions/pending", nil).body)

	path := filepath.Join("testdata", "population.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("served bytes differ from %s (run go test -update if intended):\n%s", path, firstDiff(out.Bytes(), want))
	}
}

func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return "got:  ..." + string(a[lo:min(len(a), i+80)]) + "\nwant: ..." + string(b[lo:min(len(b), i+80)])
}

func TestDeterministicForSeed(t *testing.T) {
	opts := Options{Seed: 99, Users: 2, TxPerAccountPerMonth: 10}
	a, b := New(opts), New(opts)
	opts.Seed = 100
	c := New(opts)
	if a.AppToken() != b.AppToken() || a.AppToken() == c.AppToken() {
		t.Fatal("app token not a function of the seed")
	}
	for i, u := range a.Users() {
		if b.Users()[i] != u || c.Users()[i].ID == u.ID || c.Users()[i].Token == u.Token {
			t.Fatalf("user %d: %+v / %+v / %+v", i, u, b.Users()[i], c.Users()[i])
		}
		for j, acc := range a.AccountIDs(u.ID) {
			if b.AccountIDs(u.ID)[j] != acc {
				t.Fatal("account ids differ for one seed")
			}
			ta, tb := a.Settled(acc, time.Time{}, time.Time{}), b.Settled(acc, time.Time{}, time.Time{})
			if len(ta) != len(tb) {
				t.Fatalf("account %s: %d vs %d transactions", acc, len(ta), len(tb))
			}
			for k := range ta {
				if !bytes.Equal(ta[k].JSON, tb[k].JSON) {
					t.Fatalf("transaction %d differs for one seed", k)
				}
			}
		}
	}
	ida := a.Settled(a.AccountIDs(a.Users()[0].ID)[0], time.Time{}, time.Time{})[0].ID
	idc := c.Settled(c.AccountIDs(c.Users()[0].ID)[0], time.Time{}, time.Time{})[0].ID
	if ida == idc {
		t.Fatal("transaction ids do not depend on the seed")
	}
}

// TestContentVariety checks that the population is as awkward as promised.
func TestContentVariety(t *testing.T) {
	f := New(Options{Seed: 1, Users: 3, AccountsPerUser: 6})
	seen := map[string]int{}
	ids := map[string]bool{}
	known := map[string]bool{}
	for _, ty := range append(append([]string{}, debitTypes...), creditTypes...) {
		known[ty] = true
	}
	for _, u := range f.Users() {
		for _, acc := range f.AccountIDs(u.ID) {
			for _, tx := range f.Settled(acc, time.Time{}, time.Time{}) {
				if ids[tx.ID] {
					t.Fatalf("duplicate id %s", tx.ID)
				}
				ids[tx.ID] = true
				if len(tx.ID) != 31 || strings.Trim(tx.ID[6:], "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
					t.Fatalf("id %q is not trans_ + 25 lowercase alphanumerics", tx.ID)
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(tx.JSON, &m); err != nil {
					t.Fatalf("invalid JSON: %v", err)
				}
				seen["amount "+tx.Amount]++
				for _, k := range []string{"balance", "merchant", "category", "hash", "_migrated", "x_new_field"} {
					if _, ok := m[k]; ok {
						seen["has "+k]++
					} else {
						seen["no "+k]++
					}
				}
				switch meta, ok := m["meta"]; {
				case !ok:
					seen["meta absent"]++
				case string(meta) == "{}":
					seen["meta {}"]++
				case strings.Contains(string(meta), `"conversion"`):
					seen["meta conversion"]++
				default:
					seen["meta populated"]++
				}
				if strings.Contains(string(m["category"]), `"components"`) && strings.Contains(string(m["category"]), `"personal_finance"`) {
					seen["category shape"]++
				}
				var ty string
				_ = json.Unmarshal(m["type"], &ty)
				if !known[ty] {
					seen["unknown type"]++
				}
				for _, needle := range []string{"ā", "🍩", "寿司", `\"`, `\\`, `\t`, `\u0001`} {
					if strings.Contains(string(tx.JSON), needle) {
						seen["text "+needle]++
					}
				}
				if strings.HasPrefix(tx.Amount, "-") {
					seen["negative"]++
				}
				if created := string(m["created_at"]); created < string(m["date"]) {
					t.Fatalf("created_at %s before date %s", created, m["date"])
				}
				if string(m["updated_at"]) < string(m["created_at"]) {
					t.Fatalf("updated_at before created_at: %s", tx.JSON)
				}
			}
		}
	}
	for _, want := range []string{
		"amount 0.1", "amount 0.2", "amount -11.5", "amount 1234567.89", "amount 0", "negative",
		"has balance", "no balance", "has merchant", "no merchant", "has category", "no category",
		"category shape", "has hash", "has _migrated", "has x_new_field",
		"meta absent", "meta {}", "meta populated", "meta conversion", "unknown type",
		"text ā", "text 🍩", "text 寿司", `text \"`, `text \\`, `text \t`, `text \u0001`,
	} {
		if seen[want] == 0 {
			t.Errorf("no transaction with %s", want)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // UTC ms, "" = rejected
	}{
		{"2026-01-10", "2026-01-10T00:00:00.000Z"},
		{"2026-01-10T00:00:00Z", "2026-01-10T00:00:00.000Z"},
		{"2026-01-10T00:00:00.123Z", "2026-01-10T00:00:00.123Z"},
		{"2026-01-10T00:00:00.123999Z", "2026-01-10T00:00:00.123Z"},
		{"2026-01-10T13:00:00+13:00", "2026-01-10T00:00:00.000Z"},
		{"2026-01-10T13:00:00.5+1300", "2026-01-10T00:00:00.500Z"},
		{"2026-01-10T13:00:00+13", "2026-01-10T00:00:00.000Z"},
		{"2026-01-10T05:00:00-05:00", "2026-01-10T10:00:00.000Z"},
		{"2026-01-10T12:34:56", "2026-01-10T12:34:56.000Z"},
		{"2026-01-10T12:34", "2026-01-10T12:34:00.000Z"},
		{"2026-01-10T13:00:00 13:00", ""},
		{"10/01/2026", ""},
		{"null", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, ok := ParseTime(tc.in)
		switch {
		case tc.want == "" && ok:
			t.Errorf("ParseTime(%q) accepted as %s", tc.in, got)
		case tc.want != "" && (!ok || iso(got) != tc.want):
			t.Errorf("ParseTime(%q) = %s, %v; want %s", tc.in, iso(got), ok, tc.want)
		}
	}
}

func TestBaseIDRoundTrip(t *testing.T) {
	f := New(Options{Seed: 5, Users: 1, AccountsPerUser: 1})
	for _, p := range []position{{0, 0, 0}, {1, 20000, 3}, {maxAccount - 1, maxDay - 1, maxPerDay - 1}, {12345, 20412, 77}} {
		id := f.baseID(p)
		got, ok := f.decodeBaseID(id)
		if !ok || got != p {
			t.Errorf("decode(baseID(%+v)) = %+v, %v (%s)", p, got, ok, id)
		}
		if len(id) != idLen {
			t.Errorf("id %q has length %d", id, len(id))
		}
		// one changed character is rejected
		b := []byte(id)
		b[10] = alnum[(strings.IndexByte(alnum, b[10])+1)%36]
		if _, ok := f.decodeBaseID(string(b)); ok {
			t.Errorf("corrupted id %s accepted", b)
		}
	}
	if _, ok := New(Options{Seed: 6}).decodeBaseID(f.baseID(position{1, 2, 3})); ok {
		t.Error("an id of another seed decodes")
	}
}

func TestAppendCents(t *testing.T) {
	for _, tc := range []struct {
		c    int64
		want string
	}{{0, "0"}, {10, "0.1"}, {20, "0.2"}, {-1150, "-11.5"}, {123456789, "1234567.89"}, {-1, "-0.01"}, {100, "1"}, {-250000, "-2500"}} {
		if got := centsText(tc.c); got != tc.want {
			t.Errorf("centsText(%d) = %s, want %s", tc.c, got, tc.want)
		}
		if back, ok := parseCents(tc.want); !ok || back != tc.c {
			t.Errorf("parseCents(%s) = %d, %v", tc.want, back, ok)
		}
	}
	if got := string(appendScaled(nil, -1150, 2, true)); got != "-11.50" {
		t.Errorf("fixed scale: %s", got)
	}
	for _, bad := range []string{"", "-", "1.234", "1.", "abc", "1e3", "--1"} {
		if _, ok := parseCents(bad); ok {
			t.Errorf("parseCents(%q) accepted", bad)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(cursor{page: 2, offset: 100, fp: 7}.encode())
	f.Add("null")
	f.Add("")
	f.Add("abc123...321cba")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := decodeCursor(s)
		if !ok {
			return
		}
		if c2, ok := decodeCursor(c.encode()); !ok || c2 != c {
			t.Fatalf("decoded %q to %+v which does not round-trip", s, c)
		}
	})
}
