package parquet

import (
	"bytes"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// FuzzRead feeds arbitrary bytes to Read, ReadMetadata and ReadMetadataRanged: they must return
// records or an error, never panic, and never leak Arrow memory.
func FuzzRead(f *testing.F) {
	mem := memory.NewGoAllocator()
	recs := []arrow.Record{testRecord(mem, 0, 40)}
	valid, _ := writeBytes(f, testSchema(), recs, WithRowGroupRows(16))
	uncompressed, _ := writeBytes(f, testSchema(), recs, WithRowGroupRows(16), WithCompression(nil))
	foreign := pqarrowFile(f, testSchema(), recs, 16, 1)
	empty, _ := writeBytes(f, testSchema(), nil)
	releaseAll(recs)
	for _, seed := range [][]byte{valid, uncompressed, foreign, empty, valid[:len(valid)-9], []byte("PAR1PAR1"), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
		sch, got, err := Read(bytes.NewReader(data), int64(len(data)), checked)
		if err == nil {
			if sch == nil {
				t.Fatal("nil schema without error")
			}
			for _, r := range got {
				if int(r.NumCols()) != sch.NumFields() {
					t.Fatalf("record with %d columns for %d fields", r.NumCols(), sch.NumFields())
				}
				r.Release()
			}
		} else if got != nil {
			t.Fatalf("records returned with error %v", err)
		}
		checked.AssertSize(t, 0)
		_, _ = ReadMetadata(bytes.NewReader(data), int64(len(data)))
		_, _ = ReadMetadataRanged(func(off, n int64) ([]byte, error) { return data[off : off+n], nil }, int64(len(data)))
	})
}
