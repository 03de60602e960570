package pipeline

import (
	"encoding/json"
	"testing"
	"time"
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
