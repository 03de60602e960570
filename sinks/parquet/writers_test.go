package parquet

import (
	"bytes"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// writeFresh writes recs with a writer of its own, as Write did before writers were
// pooled: the reference a reused writer's bytes must equal.
func writeFresh(t *testing.T, sch *arrow.Schema, recs []arrow.Record, opts ...Option) []byte {
	t.Helper()
	cfg := newWriteConfig(opts)
	cols, err := arrowColumns(sch)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := newReusableWriter(&buf, cols, cfg, fileMetadata(sch, cfg)).writeFile(cols, recs, cfg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReusedWriterSameBytes writes files of one schema with different sizes, row
// groups, codecs and metadata values one after another, so that Write reuses its
// writers, and checks each file against a new writer's bytes (parquet-go's Reset
// once cleared the column paths of the next file's footer).
func TestReusedWriterSameBytes(t *testing.T) {
	mem := memory.NewGoAllocator()
	sch := testSchema()
	big := testRecord(mem, 0, 3000)
	defer big.Release()
	small := testRecord(mem, 5000, 40)
	defer small.Release()
	for i, f := range []struct {
		recs []arrow.Record
		opts []Option
	}{
		{[]arrow.Record{big}, nil},
		{[]arrow.Record{small}, nil},
		{[]arrow.Record{small, big}, []Option{WithRowGroupRows(1000)}},
		{[]arrow.Record{small}, nil},
		{[]arrow.Record{big}, []Option{WithKeyValue("k", "one")}},
		{[]arrow.Record{small}, []Option{WithKeyValue("k", "two")}},
		{[]arrow.Record{small}, nil},
		{nil, nil},
		{[]arrow.Record{small}, []Option{WithCompression(ZstdFastest)}},
		{[]arrow.Record{big, small}, []Option{WithCompression(ZstdFastest), WithRowGroupRows(500)}},
		{[]arrow.Record{small}, []Option{WithCompression(ZstdFastest)}},
		{[]arrow.Record{small}, nil},
	} {
		want := writeFresh(t, sch, f.recs, f.opts...)
		var got bytes.Buffer
		if _, err := Write(&got, sch, f.recs, f.opts...); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("file %d: %d bytes, a new writer writes %d", i, got.Len(), len(want))
		}
	}
}
