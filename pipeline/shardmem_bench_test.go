package pipeline_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkShardMemory: how a shard's memory grows with its users. For each count in
// SHARD_USERS (users per shard, comma-separated, e.g. 500,5000) it runs the fleet
// benchmark's sparse population of four times as many users (runFleet: `--shards 4
// --buckets 16`, a two-year backfill, an upstream change, a daily run; each shard run
// in a child process) and reports, for the backfill (bf_) and the daily run (daily_),
// the highest over the four shards of
//
//   - rss_MiB: peak RSS (the child's own, ownPeakRSSKiB), which also holds what the
//     garbage collector may leave unswept under the soft memory limit
//     (DefaultMemoryLimit);
//   - live_MiB: peak heap marked live by a GC cycle (runtime/metrics
//     /gc/heap/live:bytes, sampled every 20ms): what the run really holds.
//
// With AKAHU_PARQUET_BENCH_HEAPPROFILE=FILE each child writes heap profiles of its
// runs at their live-heap peaks, FILE.{backfill,daily}.taskN.runM. It skips unless
// SHARD_USERS is set (make bench's fleet figures are BenchmarkFleet's). Run it with
//
//	SHARD_USERS=500,5000 go test -run '^$' -bench BenchmarkShardMemory -benchtime 1x -timeout 3h ./pipeline/
//
// SHARD_COUNTS (comma-separated, default 4) runs each size with other shard counts
// instead: the fleet grows with the shards, each shard's users stay as many, and
// what a shard holds of the whole fleet (its tokens, the token directory) shows:
//
//	SHARD_USERS=500 SHARD_COUNTS=4,40 FLEET_USERS_PER_BUCKET=125 go test -run '^$' -bench BenchmarkShardMemory -benchtime 1x -timeout 3h ./pipeline/
func BenchmarkShardMemory(b *testing.B) {
	spec := os.Getenv("SHARD_USERS")
	if spec == "" {
		b.Skip("set SHARD_USERS (users per shard, e.g. 500,5000) to run it")
	}
	counts := []int{fleetShards}
	if s := os.Getenv("SHARD_COUNTS"); s != "" {
		counts = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("SHARD_COUNTS %q: want comma-separated shard counts", s)
			}
			counts = append(counts, n)
		}
	}
	for _, f := range strings.Split(spec, ",") {
		perShard, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || perShard < 1 {
			b.Fatalf("SHARD_USERS %q: want comma-separated user counts", spec)
		}
		for _, shards := range counts {
			name := fmt.Sprintf("users_per_shard=%d", perShard)
			if len(counts) > 1 || shards != fleetShards {
				name += fmt.Sprintf("/shards=%d", shards)
			}
			b.Run(name, func(b *testing.B) { benchShardMemory(b, perShard, shards) })
		}
	}
}

func benchShardMemory(b *testing.B, perShard, shards int) {
	users := perShard * shards
	latency := fleetLatency(b, users)
	var sum fleetResult
	for i := 0; i < b.N; i++ {
		sum.add(runFleetSharded(b, fleetPopulation(users, "sparse", latency), shards, shards, 1))
	}
	for _, run := range []struct {
		name string
		s    fleetRunResult
	}{{"bf", sum.Backfill}, {"daily", sum.Daily}} {
		b.ReportMetric(float64(run.s.PeakRSSKiB)/1024, run.name+"_rss_MiB")
		b.ReportMetric(float64(run.s.PeakLive)/(1<<20), run.name+"_live_MiB")
	}
	b.Logf("%d users per shard (%d in the fleet, %d shards, latency %s): backfill peak RSS %.0f MiB, live %.0f MiB; daily peak RSS %.0f MiB, live %.0f MiB",
		perShard, users, shards, latency, float64(sum.Backfill.PeakRSSKiB)/1024, float64(sum.Backfill.PeakLive)/(1<<20),
		float64(sum.Daily.PeakRSSKiB)/1024, float64(sum.Daily.PeakLive)/(1<<20))
}
