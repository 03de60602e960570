package parquet

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	acompress "github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/klauspost/compress/zstd"
)

const benchRows = 100_000

// benchRecords is 100k rows of the test table in batches of 10k, the shape
// the pipeline hands to the sink.
func benchRecords(b *testing.B) []arrow.Record {
	mem := memory.NewGoAllocator()
	var recs []arrow.Record
	for start := 0; start < benchRows; start += 10_000 {
		recs = append(recs, testRecord(mem, start, 10_000))
	}
	b.Cleanup(func() { releaseAll(recs) })
	return recs
}

func report(b *testing.B, size int) {
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/benchRows, "bytes/row")
}

// BenchmarkWrite compares Write with Arrow's pqarrow writer on the same
// records and settings: zstd (default and fastest level), the same row
// group size, dictionary only for hinted columns, statistics on (Arrow's
// writer adds no bloom filter), and with the layout Write used before
// DefaultRowGroupRows and DefaultBloomFilterColumns were chosen for lookups.
func BenchmarkWrite(b *testing.B) {
	recs := benchRecords(b)
	sch := testSchema()
	for _, lvl := range []struct {
		name   string
		ours   Option
		arrowL int
	}{
		{"zstd", WithCompression(DefaultCompression), acompress.DefaultCompressionLevel},
		{"zstd-fastest", WithCompression(ZstdFastest), zstdFastestLevel()},
	} {
		b.Run("parquet-go/"+lvl.name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if _, err := Write(&buf, sch, recs, lvl.ours); err != nil {
					b.Fatal(err)
				}
			}
			report(b, buf.Len())
		})
		// The layout before lookups were tuned: 128Ki-row groups, no bloom filter.
		b.Run("parquet-go-128Ki-no-bloom/"+lvl.name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if _, err := Write(&buf, sch, recs, lvl.ours, WithRowGroupRows(128*1024), WithBloomFilters()); err != nil {
					b.Fatal(err)
				}
			}
			report(b, buf.Len())
		})
		b.Run("pqarrow/"+lvl.name, func(b *testing.B) {
			var buf bytes.Buffer
			props := pqarrowProps(sch, DefaultRowGroupRows, lvl.arrowL)
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				fw, err := pqarrow.NewFileWriter(sch, &buf, props, pqarrow.DefaultWriterProps())
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range recs {
					if err := fw.WriteBuffered(r); err != nil {
						b.Fatal(err)
					}
				}
				if err := fw.Close(); err != nil {
					b.Fatal(err)
				}
			}
			report(b, buf.Len())
		})
	}
}

// BenchmarkWriteSmall writes a 150-row file, a quiet bucket's month (a fleet's run
// writes thousands): its cost is mostly the writer's setup, which Write saves by
// reusing writers (on this machine, 2026-12-03: 0.64 ms and 529 kB allocated a file
// with a new writer each time, 0.33 ms and 19 kB reused).
func BenchmarkWriteSmall(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := testRecord(mem, 0, 150)
	defer rec.Release()
	sch := testSchema()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if _, err := Write(&buf, sch, []arrow.Record{rec}, WithCompression(ZstdFastest)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// zstdFastestLevel is the zstd level Arrow maps to klauspost's SpeedFastest.
func zstdFastestLevel() int {
	for l := 1; l < 20; l++ {
		if zstd.EncoderLevelFromZstd(l) == zstd.SpeedFastest {
			return l
		}
	}
	return 1
}

// BenchmarkRead compares Read with pqarrow reading the same file.
func BenchmarkRead(b *testing.B) {
	recs := benchRecords(b)
	sch := testSchema()
	data, _ := writeBytes(b, sch, recs)
	mem := memory.NewGoAllocator()
	b.Run("parquet-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
			if err != nil {
				b.Fatal(err)
			}
			releaseAll(got)
		}
		report(b, len(data))
	})
	b.Run("parquet-go/3-columns", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, got, err := Read(bytes.NewReader(data), int64(len(data)), mem, Columns("id", "amount", "date_local"))
			if err != nil {
				b.Fatal(err)
			}
			releaseAll(got)
		}
		report(b, len(data))
	})
	b.Run("pqarrow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{}, mem)
			if err != nil {
				b.Fatal(err)
			}
			tbl.Release()
		}
		report(b, len(data))
	})
}
