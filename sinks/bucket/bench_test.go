package bucket_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// BenchmarkPut measures whole-object Put throughput (objects/s and MB/s) for
// the sizes the warehouse writes. Local includes two fsyncs and a rename per
// object, so its figure depends on the disk under t.TempDir.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20} {
		impls := []struct {
			name string
			new  func(b *testing.B) bucket.Bucket
		}{
			{"Memory", func(b *testing.B) bucket.Bucket { return bucket.NewMemory() }},
			{"Local", func(b *testing.B) bucket.Bucket {
				l, err := bucket.NewLocal(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				return l
			}},
		}
		for _, impl := range impls {
			b.Run(fmt.Sprintf("%s/%dMiB", impl.name, size>>20), func(b *testing.B) {
				BenchPut(b, impl.new(b), size)
			})
		}
	}
}

// BenchPut puts size-byte objects round-robin over 8 names, conditionally
// on the previous generation, as the pipeline does.
func BenchPut(b *testing.B, bk bucket.Bucket, size int) {
	ctx := context.Background()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	gens := make([]int64, 8)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := i % len(gens)
		cond := bucket.Condition{GenerationMatch: gens[k], DoesNotExist: gens[k] == 0}
		a, err := bk.Put(ctx, fmt.Sprintf("bench/month=2024-%02d/part-000.parquet", k+1), data, cond)
		if err != nil {
			b.Fatal(err)
		}
		gens[k] = a.Generation
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}

func BenchmarkLocalAttrs(b *testing.B) {
	ctx := context.Background()
	l, err := bucket.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Put(ctx, "x.parquet", make([]byte, 16<<20), bucket.Condition{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := l.Attrs(ctx, "x.parquet"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
