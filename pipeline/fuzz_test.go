package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// FuzzDecodeManifest: decoding arbitrary bytes as a manifest never panics, and a
// manifest it accepts survives a round trip.
func FuzzDecodeManifest(f *testing.F) {
	good, _ := json.Marshal(Manifest{ManifestVersion: 1, Kind: "run", RunID: "20260101T000000.000Z-s000-abcdef",
		Range: DateRange{Start: "2026-01-01", End: "2026-01-31"}, Deleted: []Tombstone{{ID: "trans_1", Amount: "-1.5"}}})
	f.Add(good)
	f.Add([]byte(`{"manifest_version":1,"run_id":"a/b"}`))
	f.Add([]byte(`{"manifest_version":99,"run_id":"x"}`))
	f.Add([]byte(`{"manifest_version":1,"run_id":"x","range":{"end":"2026-13-01"}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeManifest(data, "fuzz.json")
		if err != nil {
			return
		}
		if m.RunID == "" || m.ManifestVersion < 1 {
			t.Fatalf("accepted a manifest without run id or version: %+v", m)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeManifest(again, "fuzz.json")
		if err != nil || m2.RunID != m.RunID || m2.Range != m.Range {
			t.Fatalf("round trip changed the manifest: %v", err)
		}
	})
}

// FuzzDates: local dates parse strictly, and the month arithmetic that lays out
// windows is consistent for any date.
func FuzzDates(f *testing.F) {
	for _, s := range []string{"2024-01-01", "2024-02-29", "2023-02-29", "1999-12-31", "2026-1-1", "", "2024-13-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDay(s)
		if err != nil {
			return
		}
		if _, perr := time.Parse(time.DateOnly, s); perr != nil {
			t.Fatalf("parseDay accepted %q that time.Parse rejects", s)
		}
		if d.String() != s {
			t.Fatalf("parseDay(%q) renders as %s", s, d)
		}
		m := d.month()
		if d < m.first() || d > m.last() || m.next().first() != m.last()+1 || m.add(-1).next() != m {
			t.Fatalf("month arithmetic broken around %s", s)
		}
		if p, ok := parseTxObject(txObject(partKey{m, 7})); !ok || p != (partKey{m, 7}) {
			t.Fatalf("partition name of %s does not round trip", m)
		}
	})
}

// FuzzTokensFile: any tokens file is either refused by CheckTokensFile with an error
// that quotes no token, or read by TokensFile as the tokens it counted, each one
// field long and its user id valid or empty, as often as it is read.
func FuzzTokensFile(f *testing.F) {
	f.Add("user_token_a\nuser_token_b user_1\n")
	f.Add("# fleet\n\n  user_token_a\tuser_2  \n")
	f.Add("user_token_a\nuser_token_a\n")
	f.Add("user_token_a user_token_b\n")
	f.Add("a b c\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		n, err := CheckTokensFile(path)
		if err != nil {
			for _, field := range strings.Fields(content) {
				if len(field) >= 12 && !strings.Contains(path, field) && strings.Contains(err.Error(), field) {
					t.Fatalf("the error quotes %q: %v", field, err)
				}
			}
			return
		}
		for range 2 {
			got := 0
			err := TokensFile(path)(func(tok akahu.Token, id string) bool {
				got++
				if tok == "" || strings.ContainsAny(string(tok), " \t\r\n") || strings.HasPrefix(string(tok), "#") {
					t.Fatalf("token %d is not one field: %q", got, tok)
				}
				if err := CheckUserID(id); err != nil {
					t.Fatalf("token %d's user id %q: %v", got, id, err)
				}
				return true
			})
			if err != nil || got != n {
				t.Fatalf("read %d tokens (%v); the check counted %d", got, err, n)
			}
		}
	})
}
