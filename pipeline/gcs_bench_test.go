package pipeline_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/internal/faultproxy"
	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// BenchmarkGCSLatency: a two-year backfill of the fleet benchmark's 2,000 quiet
// users (16 buckets, so ~430 objects) into fake-gcs-server behind the fault proxy,
// which holds every GCS answer for 20 ms (newFaultyGCS's slow answers), as a
// remote bucket would; Akahu (the fake) answers at once, so the bucket's latency
// is what the run waits for. Reported: wall_s a backfill, objects written and GCS
// requests.
func BenchmarkGCSLatency(b *testing.B) {
	e := newBenchEnv(b, fleetPopulation(2000, "sparse", 0))
	var wall time.Duration
	var objects, requests int64
	for i := 0; i < b.N; i++ {
		var refreshes atomic.Int64
		out, proxy := newFaultyGCS(b, uint64(i+1), []faultproxy.Rule{{Kind: faultproxy.Slow, Rate: 1}}, &refreshes)
		began := time.Now()
		cfg := pipeline.Config{Out: out, Source: e.client, Users: e.tokens, Workers: benchWorkers, Buckets: 16,
			Now: benchClock(e.opts.To), Start: e.opts.From.Format(time.DateOnly), End: e.opts.To.Format(time.DateOnly)}
		m, err := pipeline.Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(began)
		objects += m.Uploads.Objects
		requests += proxy.Stats().Requests
	}
	n := float64(b.N)
	b.ReportMetric(wall.Seconds()/n, "wall_s")
	b.ReportMetric(float64(objects)/n, "objects")
	b.ReportMetric(float64(requests)/n, "gcs_requests")
}
