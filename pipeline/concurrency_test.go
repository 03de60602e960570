package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// TestConcurrentRuns: two runs writing one dataset at once (each with its own view
// of the directory, as two processes would have) both commit, and nothing is lost
// (invariant 6).
func TestConcurrentRuns(t *testing.T) {
	dir := t.TempDir()
	open := func() bucket.Bucket {
		b, err := bucket.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h := newHarness(t, open(), smallPopulation())
	h.srv.SetLatency(2 * time.Millisecond)
	from, to := h.opts.From, h.opts.To
	var wg sync.WaitGroup
	errs := make([]error, 2)
	ms := make([]*pipeline.Manifest, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := h.config(from, to)
			cfg.Out = open()
			ms[i], errs[i] = pipeline.Run(context.Background(), cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if ms[0].RunID == ms[1].RunID {
		t.Fatal("two runs share a run id")
	}
	h.expectFaithful(from, to)
	expectTombstones(t, h.b, map[string]int{})
	// The later run found the earlier one's rows and kept them unchanged.
	if ms[0].Counts.Inserted+ms[1].Counts.Inserted != int64(len(readRows(t, h.b, "transactions/"))) {
		t.Errorf("inserted %d + %d, dataset has %d rows", ms[0].Counts.Inserted, ms[1].Counts.Inserted, len(readRows(t, h.b, "transactions/")))
	}
}

// TestLockHeld: a run that cannot get the shard's lock in time fails with ErrLocked,
// names the holder, and writes nothing.
func TestLockHeld(t *testing.T) {
	h := newHarness(t, newLocal(t), smallPopulation())
	h.srv.SetLatency(30 * time.Millisecond)
	from, to := h.opts.From, h.opts.To
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(context.Background(), h.config(from, to))
		done <- err
	}()
	// Wait until the first run holds the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l, _ := h.b.List(context.Background(), "_locks/"); len(l) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first run never took the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cfg := h.config(from, to)
	cfg.LockWait = time.Millisecond
	m, err := pipeline.Run(context.Background(), cfg)
	if !errors.Is(err, pipeline.ErrLocked) || m != nil {
		t.Fatalf("second run: err %v manifest %v, want ErrLocked and nothing committed", err, m)
	}
	if !strings.Contains(err.Error(), "_locks/shard-000-of-001.json") || !strings.Contains(err.Error(), "held by run") {
		t.Errorf("error does not name the lock and its holder: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	list, _ := h.b.List(context.Background(), "_manifests/")
	if len(list) != 1 {
		t.Errorf("%d manifests, want only the first run's", len(list))
	}
	h.expectFaithful(from, to)
}
