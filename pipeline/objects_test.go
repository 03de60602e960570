package pipeline

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// TestEncodeParquetCodec pins the codec of every object the pipeline writes: zstd at
// its fastest level (the sink's default level costs about twice the CPU for files a
// few percent smaller). The bytes must be exactly the sink's with that codec, so a
// rerun of unchanged data still finds its objects byte-identical.
func TestEncodeParquetCodec(t *testing.T) {
	// Enough rows, with repeats, that the two levels compress the pages differently.
	var txs []tx
	for i := range 3000 {
		txs = append(txs, tx{fmt.Sprintf("trans_%07d", i*7919%100003), fmt.Sprintf("acc_%d", i%3), fmt.Sprintf("2026-02-%02d", 1+i%28),
			fmt.Sprintf("-%d.%02d", i%97, i%100), fmt.Sprintf("card purchase %d at shop %d", i%13, i%29)})
	}
	recs := records(t, "run-1", txs...)
	defer recs[0].Release()
	sch := recs[0].Schema()
	got, rows, err := encodeParquet(sch, recs, parquetsink.WithKeyValue("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	if rows != int64(len(txs)) {
		t.Errorf("rows = %d, want %d", rows, len(txs))
	}
	for _, c := range []struct {
		name  string
		codec []parquetsink.Option
		same  bool
	}{
		{"zstd fastest", []parquetsink.Option{parquetsink.WithCompression(parquetsink.ZstdFastest)}, true},
		{"zstd default", []parquetsink.Option{parquetsink.WithCompression(parquetsink.DefaultCompression)}, false},
	} {
		var want bytes.Buffer
		if _, err := parquetsink.Write(&want, sch, []arrow.Record{recs[0]}, append(c.codec, parquetsink.WithKeyValue("k", "v"))...); err != nil {
			t.Fatal(err)
		}
		if same := bytes.Equal(got, want.Bytes()); same != c.same {
			t.Errorf("encodeParquet's bytes equal the sink's with %s: %v, want %v", c.name, same, c.same)
		}
	}
}
