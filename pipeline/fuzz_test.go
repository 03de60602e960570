package pipeline

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
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

// FuzzDecodeStateLine: the direct reading of a state object's line agrees with
// encoding/json on every line it accepts, and every line encoding/json writes for a
// user or an account is read directly.
func FuzzDecodeStateLine(f *testing.F) {
	f.Add([]byte(`{"user":{"token_fingerprint":"0a1b","user_id":"user_1"}}`), "fp", "user_2", false)
	f.Add([]byte(`{"account":{"account_id":"acc_1"}}`), "acc_1", "", true)
	f.Add([]byte(`{"account":{"account_id":"acc_1","user_id":"user_1"}}`), "acc_2", "user_1", true)
	f.Add([]byte(`{"user":{"token_fingerprint":"a","user_id":"b","x":"c"}}`), "a\"b", "é", false)
	f.Fuzz(func(t *testing.T, line []byte, a, b string, account bool) {
		if got, ok := fastStateLine(line); ok {
			var want stateLine
			if err := json.Unmarshal(line, &want); err != nil {
				t.Fatalf("%q read directly as %+v; encoding/json refuses it: %v", line, got, err)
			}
			if g, w := fmt.Sprint(deref(got)), fmt.Sprint(deref(want)); g != w {
				t.Fatalf("%q: read directly as %s, encoding/json reads %s", line, g, w)
			}
		}
		l := stateLine{User: &StateUser{TokenFP: a, UserID: b}}
		if account {
			l = stateLine{Account: &StateAccount{AccountID: a, UserID: b}}
		}
		data, err := json.Marshal(l)
		if err != nil {
			return
		}
		var want stateLine // what it holds (invalid UTF-8 was replaced)
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeStateLine(data)
		if err != nil || fmt.Sprint(deref(got)) != fmt.Sprint(deref(want)) {
			t.Fatalf("%s decoded as %+v (%v), want %+v", data, deref(got), err, deref(want))
		}
	})
}

// deref shows a state line's values rather than its pointers.
func deref(l stateLine) [2]any {
	var out [2]any
	if l.User != nil {
		out[0] = *l.User
	}
	if l.Account != nil {
		out[1] = *l.Account
	}
	return out
}

// TestStateLinesReadDirectly: the lines this tool writes in users and members objects
// take the direct reading, not encoding/json.
func TestStateLinesReadDirectly(t *testing.T) {
	users := encodeUserLines(map[string]StateUser{tokenFingerprint("user_token_a"): {tokenFingerprint("user_token_a"), "user_ck9x-2_a"}})
	bs := &bucketState{accounts: map[string]StateAccount{"acc_1": {AccountID: "acc_1"}, "acc_2": {AccountID: "acc_2", UserID: "user_2"}}}
	for _, data := range [][]byte{users, bs.encodeMembers()} {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			if _, ok := fastStateLine(line); !ok {
				t.Errorf("%s is not read directly", line)
			}
		}
	}
}
