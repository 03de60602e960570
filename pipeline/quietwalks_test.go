package pipeline_test

import (
	"context"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestManyQuietWalksOnePartition: a partition that waits for many quiet users' walks
// (150 users in one bucket, a few rows each a month) gets their rows concatenated
// as they wait (every 64 slices), in memory or, past the spill budget, in the spill;
// either way every row lands once in its partition.
func TestManyQuietWalksOnePartition(t *testing.T) {
	for _, c := range []struct {
		name string
		hold int64
	}{{"in memory", 0}, {"spilled", 64 << 10}, {"no budget", -1}} {
		t.Run(c.name, func(t *testing.T) {
			opts := akahutest.Options{Seed: 12, Users: 150, AccountsPerUser: 1, TxPerAccountPerMonth: 3,
				From: date(2026, 1, 1), To: date(2026, 2, 28)}
			h := newHarness(t, bucket.NewMemory(), opts)
			cfg := h.config(opts.From, opts.To)
			cfg.HoldBytes, cfg.SpillDir = c.hold, t.TempDir()
			m, err := pipeline.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Failures) > 0 {
				t.Fatalf("failures: %v", m.Failures)
			}
			h.expectFaithful(opts.From, opts.To)
			if got, want := m.Counts.Inserted, int64(h.srv.TotalSettledAll()); got != want {
				t.Errorf("inserted %d, the fake serves %d", got, want)
			}
		})
	}
}
