package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// flakyLock fails Puts of lock objects with a transient error while fail is set.
// With stored set the Put is done first and only the answer is lost.
type flakyLock struct {
	bucket.Bucket
	fail, stored atomic.Bool
	attempts     atomic.Int64
}

func (f *flakyLock) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	if !strings.HasPrefix(name, lockPrefix) || !f.fail.Load() {
		return f.Bucket.Put(ctx, name, data, cond)
	}
	f.attempts.Add(1)
	if f.stored.Load() {
		f.stored.Store(false)
		f.fail.Store(false)
		if _, err := f.Bucket.Put(ctx, name, data, cond); err != nil {
			return bucket.Attrs{}, err
		}
	}
	return bucket.Attrs{}, bucket.ErrTransient
}

// fakeClock is a clock the test advances.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLeaseRefreshFailures: transient refresh errors are retried within the lease;
// once the lease reaches its safe end without a refresh it is lost: every write
// through the run's bucket is refused naming the lock, the run's context is cancelled
// with the loss as its cause, and the lock is not released as if it were still held.
func TestLeaseRefreshFailures(t *testing.T) {
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	setup := func(t *testing.T) (*flakyLock, *fakeClock, *lease, *leasedBucket) {
		f := &flakyLock{Bucket: bucket.NewMemory()}
		clk := &fakeClock{t: time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)}
		l, err := acquireLock(ctx, f, lockObject(0, 1), "20261130T200000.000Z-s000-aaaaaa", ttl, 0, clk.now)
		if err != nil {
			t.Fatal(err)
		}
		return f, clk, l, &leasedBucket{Bucket: f, leases: []*lease{l}}
	}

	t.Run("lost before expiry", func(t *testing.T) {
		f, clk, l, g := setup(t)
		runCtx, stop := l.bind(ctx)
		defer stop()
		f.fail.Store(true)
		clk.add(ttl / 3) // the refresh is due
		waitFor(t, "retried refreshes", func() bool { return f.attempts.Load() >= 3 })
		if _, err := g.Put(ctx, "a.json", []byte("a"), bucket.Condition{}); err != nil {
			t.Fatalf("a write within the lease failed: %v", err)
		}
		clk.add(ttl - ttl/3 - ttl/4) // the lease's safe end: a quarter of the TTL before expiry
		_, err := g.Put(ctx, "b.json", []byte("b"), bucket.Condition{})
		if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), lockObject(0, 1)) {
			t.Fatalf("write at the lease's safe end: %v, want ErrLockLost naming the lock", err)
		}
		if err := g.Delete(ctx, "a.json", bucket.Condition{}); !errors.Is(err, ErrLockLost) {
			t.Fatalf("delete after the loss: %v, want ErrLockLost", err)
		}
		if _, _, err := f.Get(ctx, "b.json"); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatalf("a refused write reached the store: %v", err)
		}
		<-runCtx.Done()
		if cause := context.Cause(runCtx); !errors.Is(cause, ErrLockLost) {
			t.Fatalf("run context cause %v, want ErrLockLost", cause)
		}
		if err := l.release(ctx); !errors.Is(err, ErrLockLost) {
			t.Fatalf("release of a lost lease: %v", err)
		}
		if _, _, err := f.Get(ctx, lockObject(0, 1)); err != nil {
			t.Fatalf("a lost lease deleted the lock document: %v", err)
		}
	})

	t.Run("refresh gets through in time", func(t *testing.T) {
		f, clk, l, g := setup(t)
		defer func() { _ = l.release(ctx) }()
		first := l.expires()
		f.fail.Store(true)
		clk.add(ttl / 3)
		waitFor(t, "retried refreshes", func() bool { return f.attempts.Load() >= 2 })
		f.fail.Store(false)
		waitFor(t, "a refresh", func() bool { return l.expires().After(first) })
		clk.add(ttl / 2) // past the first lease's safe end, inside the refreshed one
		if _, err := g.Put(ctx, "a.json", []byte("a"), bucket.Condition{}); err != nil {
			t.Fatalf("write after a refresh got through: %v", err)
		}
	})

	t.Run("answer of a refresh lost", func(t *testing.T) {
		f, clk, l, g := setup(t)
		defer func() { _ = l.release(ctx) }()
		first := l.expires()
		f.stored.Store(true)
		f.fail.Store(true)
		clk.add(ttl / 3)
		waitFor(t, "a refresh", func() bool { return l.expires().After(first) })
		if _, err := g.Put(ctx, "a.json", []byte("a"), bucket.Condition{}); err != nil {
			t.Fatalf("the lease was dropped although its refresh was stored: %v", err)
		}
	})

	t.Run("taken over", func(t *testing.T) {
		f, clk, l, g := setup(t)
		if _, err := f.Bucket.Put(ctx, lockObject(0, 1), []byte(`{"run_id":"other"}`), bucket.Condition{}); err != nil {
			t.Fatal(err)
		}
		clk.add(ttl / 3)
		<-l.lostCtx.Done()
		_, err := g.Put(ctx, "a.json", []byte("a"), bucket.Condition{})
		if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "taken over") {
			t.Fatalf("write after a takeover: %v", err)
		}
		_ = l.release(ctx)
	})
}

// expires is when the lease ends as last written.
func (l *lease) expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doc.ExpiresAt
}
