package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// DefaultLockTTL is how long a lock stays valid without a heartbeat. A run refreshes it
// every third of that; a holder that died is detected sooner when it ran on this host.
const DefaultLockTTL = 2 * time.Minute

type lockDoc struct {
	RunID     string    `json:"run_id"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Acquired  time.Time `json:"acquired_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// lease is a held lock object, refreshed in the background until released.
type lease struct {
	b      bucket.Bucket
	name   string
	doc    lockDoc
	mu     sync.Mutex
	gen    int64
	lost   error
	stop   chan struct{}
	done   chan struct{}
	ttl    time.Duration
	now    func() time.Time
	before func(string)
}

// acquireLock takes the shard's lock object, waiting up to wait for a live holder.
// A holder whose lease expired, or that ran on this host and whose process is gone,
// is taken over with a generation condition, so two contenders never both win.
func acquireLock(ctx context.Context, b bucket.Bucket, name, runID string, ttl, wait time.Duration, now func() time.Time, before func(string)) (*lease, error) {
	host, _ := os.Hostname()
	deadline := now().Add(wait)
	delay := 200 * time.Millisecond
	for {
		doc := lockDoc{RunID: runID, Host: host, PID: os.Getpid(), Acquired: now().UTC(), ExpiresAt: now().Add(ttl).UTC()}
		data, _ := json.Marshal(doc)
		before(name)
		attrs, err := b.Put(ctx, name, data, bucket.Condition{DoesNotExist: true})
		if err == nil {
			return startLease(b, name, doc, attrs.Generation, ttl, now, before), nil
		}
		if !errors.Is(err, bucket.ErrConflict) {
			return nil, fmt.Errorf("take lock %s: %w", name, err)
		}
		cur, curAttrs, gerr := b.Get(ctx, name)
		if errors.Is(gerr, bucket.ErrNotFound) {
			continue // released meanwhile
		}
		if gerr != nil {
			return nil, fmt.Errorf("read lock %s: %w", name, gerr)
		}
		var held lockDoc
		stale := json.Unmarshal(cur, &held) != nil || now().After(held.ExpiresAt) ||
			(held.Host == host && !processAlive(held.PID))
		if stale {
			before(name)
			attrs, err := b.Put(ctx, name, data, bucket.Condition{GenerationMatch: curAttrs.Generation})
			if err == nil {
				return startLease(b, name, doc, attrs.Generation, ttl, now, before), nil
			}
			if !errors.Is(err, bucket.ErrConflict) {
				return nil, fmt.Errorf("take over stale lock %s: %w", name, err)
			}
			continue
		}
		if !now().Before(deadline) {
			return nil, fmt.Errorf("%w: %s held by run %s (host %s, pid %d) until %s",
				ErrLocked, name, held.RunID, held.Host, held.PID, held.ExpiresAt.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func startLease(b bucket.Bucket, name string, doc lockDoc, gen int64, ttl time.Duration, now func() time.Time, before func(string)) *lease {
	l := &lease{b: b, name: name, doc: doc, gen: gen, stop: make(chan struct{}), done: make(chan struct{}), ttl: ttl, now: now, before: before}
	go l.heartbeat()
	return l
}

func (l *lease) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.doc.ExpiresAt = l.now().Add(l.ttl).UTC()
			data, _ := json.Marshal(l.doc)
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
			attrs, err := l.b.Put(ctx, l.name, data, bucket.Condition{GenerationMatch: l.gen})
			cancel()
			if err == nil {
				l.gen = attrs.Generation
			} else if errors.Is(err, bucket.ErrConflict) {
				l.lost = fmt.Errorf("lock %s was taken by another run: %w", l.name, err)
			}
			l.mu.Unlock()
		}
	}
}

// check returns an error if the lease was lost to another run.
func (l *lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// release stops the heartbeat and deletes the lock if it is still ours.
func (l *lease) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	l.before(l.name)
	if err := l.b.Delete(ctx, l.name, bucket.Condition{GenerationMatch: l.gen}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
		return fmt.Errorf("release lock %s: %w", l.name, err)
	}
	return nil
}
