package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var testExtractedAt = time.Date(2024, 7, 1, 2, 3, 4, 567891000, time.UTC)

func testOptions() Options {
	return Options{RunID: "run_20240701T020304Z", ExtractedAt: testExtractedAt}
}

// guidesDir holds the list responses transcribed from Akahu's published
// guides; they describe Akahu rather than this package, so they live in the
// module's top-level testdata, shared with sources/akahu's tests.
var guidesDir = filepath.Join("..", "testdata", "akahu", "guides")

// guide names a response in guidesDir; local one in this package's testdata.
func guide(name string) string { return filepath.Join(guidesDir, name) }
func local(name string) string { return filepath.Join("testdata", name) }

// loadItems returns the raw items of the Akahu list response at path.
func loadItems(t testing.TB, path string) []json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.Items
}

// dumpRecord renders rec as deterministic JSON lines: one object per row,
// keys in schema order, decimals as exact text, instants as RFC 3339 UTC
// micros, dates as YYYY-MM-DD.
func dumpRecord(t testing.TB, rec arrow.Record) []byte {
	t.Helper()
	var out bytes.Buffer
	for row := 0; row < int(rec.NumRows()); row++ {
		out.WriteByte('{')
		for c, f := range rec.Schema().Fields() {
			if c > 0 {
				out.WriteByte(',')
			}
			k, _ := json.Marshal(f.Name)
			out.Write(k)
			out.WriteByte(':')
			out.WriteString(cellJSON(t, rec.Column(c), row))
		}
		out.WriteString("}\n")
	}
	return out.Bytes()
}

func cellJSON(t testing.TB, col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "null"
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	switch a := col.(type) {
	case *array.String:
		return q(a.Value(i))
	case *array.Decimal128:
		return q(a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale))
	case *array.Timestamp:
		return q(time.UnixMicro(int64(a.Value(i))).UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	case *array.Date32:
		return q(a.Value(i).ToTime().Format("2006-01-02"))
	case *array.Boolean:
		return fmt.Sprint(a.Value(i))
	}
	t.Fatalf("unexpected column type %T", col)
	return ""
}

// validateRecord checks what every record of this package must satisfy.
func validateRecord(t testing.TB, rec arrow.Record, want *arrow.Schema) {
	t.Helper()
	if !rec.Schema().Equal(want) {
		t.Fatalf("schema mismatch:\n got %v\nwant %v", rec.Schema(), want)
	}
	for c, f := range rec.Schema().Fields() {
		col := rec.Column(c)
		if int64(col.Len()) != rec.NumRows() {
			t.Fatalf("column %s has %d rows, record %d", f.Name, col.Len(), rec.NumRows())
		}
		if !f.Nullable && col.NullN() != 0 {
			t.Fatalf("non-nullable column %s has %d nulls", f.Name, col.NullN())
		}
		for i := 0; i < col.Len(); i++ {
			if col.IsNull(i) {
				continue
			}
			switch a := col.(type) {
			case *array.String:
				v := a.Value(i)
				if !utf8.ValidString(v) {
					t.Fatalf("column %s row %d: invalid UTF-8 %q", f.Name, i, v)
				}
				if f.Name == "extra" {
					var m map[string]any
					if err := json.Unmarshal([]byte(v), &m); err != nil || len(m) == 0 {
						t.Fatalf("extra row %d is not a non-empty JSON object: %q (%v)", i, v, err)
					}
				}
			case *array.Decimal128:
				v := a.Value(i)
				if !v.FitsInPrecision(a.DataType().(*arrow.Decimal128Type).Precision) {
					t.Fatalf("column %s row %d: %s out of precision", f.Name, i, v.ToString(0))
				}
			}
		}
	}
}

func jsonUnmarshalString(cell string, dst *string) error { return json.Unmarshal([]byte(cell), dst) }
