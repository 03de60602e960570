package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestWalksWaitForTheMergers: when merging falls behind (here: every partition
// write blocks until released), the walks stop once the mergers' queue is full and a
// quarter of the spill budget (1 MiB here) waits in memory, instead of walking bucket
// after bucket and holding their rows, in memory or in the spill, until the mergers
// catch up. Released, the run completes and the dataset is faithful.
func TestWalksWaitForTheMergers(t *testing.T) {
	opts := akahutest.Options{Seed: 11, Users: 80, AccountsPerUser: 1, TxPerAccountPerMonth: 2,
		From: date(2025, 12, 1), To: date(2026, 2, 28)}
	h := newHarness(t, bucket.NewMemory(), opts)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	var done, total atomic.Int64
	cfg := h.config(opts.From, opts.To)
	cfg.Workers, cfg.Buckets, cfg.HoldBytes = 2, 4, 1<<20 // 20 users a bucket, 3 partitions each
	cfg.BeforeWrite = func(object string) {
		if strings.HasPrefix(object, "transactions/") {
			<-release
		}
	}
	cfg.Progress = func(d, n int) {
		total.Store(int64(n))
		for {
			old := done.Load()
			if int64(d) <= old || done.CompareAndSwap(old, int64(d)) {
				return
			}
		}
	}
	errc := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(context.Background(), cfg)
		errc <- err
	}()
	// Wait until the walks stop (no progress for a second) or all are done.
	last, since := int64(-1), time.Now()
	for time.Since(since) < time.Second {
		time.Sleep(50 * time.Millisecond)
		if d := done.Load(); d != last {
			last, since = d, time.Now()
		}
		if n := total.Load(); n > 0 && last == n {
			break
		}
	}
	n := total.Load()
	t.Logf("%d of %d windows walked while no partition could be written", last, n)
	if n == 0 {
		t.Fatal("no walk finished while the writes were blocked")
	}
	// Two mergers blocked and a queue of four hold two buckets' partitions; the walks
	// under way may finish a few more users. Without the wait, every walk finishes.
	if last*4 > n*3 {
		t.Errorf("%d of %d windows walked while no partition could be written; want the walks to wait for the mergers", last, n)
	}
	releaseOnce.Do(func() { close(release) })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	h.expectFaithful(opts.From, opts.To)
}

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
