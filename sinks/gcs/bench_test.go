package gcs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

// BenchmarkPut measures conditional Put throughput (objects/s, MB/s) against
// the in-process emulator over loopback HTTP: client-side CRC32C, the
// multipart encoding, the emulator's own hashing and copying. It bounds the
// client's overhead, not GCS's throughput. Compare with BenchmarkPut in
// sinks/bucket (Memory, Local).
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("Emulator/%dMiB", size>>20), func(b *testing.B) {
			srv, c := emulator(b, nil)
			bn := newBucketName()
			srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
			bk := gcs.NewWithClient(c, bn, "bench")
			ctx := context.Background()
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			gens := make([]int64, 8)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := i % len(gens)
				cond := bucket.Condition{GenerationMatch: gens[k], DoesNotExist: gens[k] == 0}
				a, err := bk.Put(ctx, fmt.Sprintf("month=2024-%02d/part-000.parquet", k+1), data, cond)
				if err != nil {
					b.Fatal(err)
				}
				gens[k] = a.Generation
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}
