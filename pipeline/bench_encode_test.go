package pipeline_test

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// BenchmarkNormaliseEncode measures the CPU path of docs/design.md's first target on ONE
// core: realistic Akahu page JSON → Arrow records → Parquet bytes (zstd), as the
// pipeline does it (8k-row records, one file per 100k rows).
func BenchmarkNormaliseEncode(b *testing.B) {
	f := akahutest.New(akahutest.Options{Seed: 5, Users: 4, AccountsPerUser: 4, TxPerAccountPerMonth: 600,
		From: date(2025, 7, 1), To: date(2026, 3, 31)})
	var items [][]byte
	var size int
	for _, u := range f.Users() {
		for _, id := range f.AccountIDs(u.ID) {
			for _, tx := range f.Settled(id, time.Time{}, time.Time{}) {
				items = append(items, tx.JSON)
				size += len(tx.JSON)
			}
		}
	}
	if len(items) < 50000 {
		b.Fatalf("only %d transactions", len(items))
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	bld := schema.NewTransactionBuilder(memory.DefaultAllocator, schema.Options{RunID: "bench", ExtractedAt: time.Unix(0, 0)})
	defer bld.Release()
	var out bytes.Buffer
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var recs []arrow.Record
		for _, it := range items {
			if err := bld.Append(it, "NZD"); err != nil {
				b.Fatal(err)
			}
			if bld.Len() == 8192 {
				recs = append(recs, bld.NewRecord())
			}
		}
		recs = append(recs, bld.NewRecord())
		out.Reset()
		if _, err := parquetsink.Write(&out, schema.Transactions(), recs); err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			r.Release()
		}
	}
	el := time.Since(start)
	b.ReportMetric(float64(len(items)*b.N)/el.Seconds(), "tx/s_1core")
	b.ReportMetric(float64(size)/float64(len(items)), "json_B/tx")
	b.ReportMetric(float64(out.Len())/float64(len(items)), "parquet_B/tx")
}
