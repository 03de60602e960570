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
// write blocks until released), the walks stop once the mergers' queue is full,
// instead of walking bucket after bucket and holding their rows, in memory or in the
// spill, until the mergers catch up. Released, the run completes and the dataset is
// faithful.
func TestWalksWaitForTheMergers(t *testing.T) {
	opts := akahutest.Options{Seed: 11, Users: 80, AccountsPerUser: 1, TxPerAccountPerMonth: 2,
		From: date(2025, 12, 1), To: date(2026, 2, 28)}
	h := newHarness(t, bucket.NewMemory(), opts)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	var done, total atomic.Int64
	cfg := h.config(opts.From, opts.To)
	cfg.Workers, cfg.Buckets = 2, 4 // 20 users a bucket, 3 partitions each
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
