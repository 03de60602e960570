package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// eventLog orders what two runs did to one dataset.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (e *eventLog) add(s string) {
	e.mu.Lock()
	e.events = append(e.events, s)
	e.mu.Unlock()
}

func (e *eventLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// watchedBucket logs every write that reached the store. With failLocks set, refreshes
// of lock objects fail with a transient error (the first Put, taking the lock, passes).
type watchedBucket struct {
	bucket.Bucket
	who       string
	log       *eventLog
	failLocks bool
	mu        sync.Mutex
	locks     int
	onLock    func()
}

func (w *watchedBucket) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	if strings.HasPrefix(name, "_locks/") {
		w.mu.Lock()
		w.locks++
		n := w.locks
		w.mu.Unlock()
		if w.failLocks && n > 1 {
			return bucket.Attrs{}, fmt.Errorf("put %s: 503 backend error: %w", name, bucket.ErrTransient)
		}
		a, err := w.Bucket.Put(ctx, name, data, cond)
		if err == nil {
			w.log.add(w.who + " wrote " + name)
			if w.onLock != nil {
				w.onLock()
			}
		}
		return a, err
	}
	a, err := w.Bucket.Put(ctx, name, data, cond)
	if err == nil {
		w.log.add(w.who + " wrote " + name)
	}
	return a, err
}

func (w *watchedBucket) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	err := w.Bucket.Delete(ctx, name, cond)
	if err == nil {
		w.log.add(w.who + " deleted " + name)
	}
	return err
}

// stalledSource stalls one account's transactions until the run's context ends or
// release closes (bounded, so a run that never stops cannot hang the test).
type stalledSource struct {
	pipeline.Source
	account string
	release <-chan struct{}
}

func (s *stalledSource) Transactions(ctx context.Context, user akahu.Token, accountID string, w akahu.Window, fn func(akahu.Page) error) error {
	if accountID == s.account {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.release:
		case <-time.After(30 * time.Second):
		}
	}
	return s.Source.Transactions(ctx, user, accountID, w, fn)
}

// TestLockRefreshFailureStopsRun: a run whose lock refreshes fail (transient errors)
// while it is still extracting stops before its lease ends, with an error naming the
// lock, and commits nothing. A second run waiting for the lock takes it over once the
// lease expired, and the first run never writes after that: everything it wrote
// reached the store before the takeover. The second run's dataset is faithful.
func TestLockRefreshFailureStopsRun(t *testing.T) {
	dir := newLocal(t)
	h := newHarness(t, dir, smallPopulation())
	h.accountWalks = true // the faults target one account's endpoints
	from, to := h.opts.From, h.opts.To
	var log eventLog
	takeover := make(chan struct{})
	var once sync.Once

	cfg1 := h.config(from, to)
	cfg1.LockTTL = time.Second
	cfg1.Out = &watchedBucket{Bucket: dir, who: "run 1", log: &log, failLocks: true}
	stalled, _, _ := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))
	cfg1.Source = &stalledSource{Source: h.client, account: stalled, release: takeover}

	type result struct {
		m   *pipeline.Manifest
		err error
	}
	first := make(chan result, 1)
	go func() {
		m, err := pipeline.Run(context.Background(), cfg1)
		first <- result{m, err}
	}()
	waitLock(t, dir)

	cfg2 := h.config(from, to)
	cfg2.Out = &watchedBucket{Bucket: dir, who: "run 2", log: &log, onLock: func() { once.Do(func() { log.add("run 2 took the lock"); close(takeover) }) }}
	m2, err2 := pipeline.Run(context.Background(), cfg2)
	r1 := <-first
	if err2 != nil {
		t.Fatalf("second run: %v", err2)
	}
	if r1.m != nil || !errors.Is(r1.err, pipeline.ErrLockLost) || !strings.Contains(r1.err.Error(), "_locks/shard-000-of-001.json") {
		t.Errorf("first run: manifest %v, err %v; want nothing committed and ErrLockLost naming the lock", r1.m != nil, r1.err)
	} else {
		t.Logf("first run: %q", r1.err)
	}
	after := false
	for _, e := range log.list() {
		if e == "run 2 took the lock" {
			after = true
		}
		if after && strings.HasPrefix(e, "run 1 ") {
			t.Errorf("after the second run took the lock over, the first run still wrote: %s", e)
		}
	}
	list, _ := dir.List(context.Background(), "_manifests/")
	if len(list) != 1 || !strings.Contains(list[0].Name, m2.RunID) {
		t.Errorf("manifests %v, want only the second run's", list)
	}
	h.expectFaithful(from, to)
}

func waitLock(t *testing.T, b bucket.Bucket) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l, _ := b.List(context.Background(), "_locks/"); len(l) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run never took the lock")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
