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
)

// lostAnswers wraps a bucket: a Put of a name that pick accepts is applied (or
// not, if apply is false) and then fails with ErrTransient, as a write whose
// answer was lost after the bucket's own retries; reads (whole or by range) of names
// getFails accepts fail transiently too.
type lostAnswers struct {
	bucket.Bucket
	mu       sync.Mutex
	pick     func(name string, cond bucket.Condition) bool
	apply    bool
	getFails func(name string) bool
	lost     []string
}

func (l *lostAnswers) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	l.mu.Lock()
	hit := l.pick != nil && l.pick(name, cond)
	if hit {
		l.lost = append(l.lost, name)
	}
	l.mu.Unlock()
	if !hit {
		return l.Bucket.Put(ctx, name, data, cond)
	}
	if l.apply {
		if _, err := l.Bucket.Put(ctx, name, data, cond); err != nil {
			return bucket.Attrs{}, err
		}
	}
	return bucket.Attrs{}, fmt.Errorf("put %q: connection closed before the answer: %w", name, bucket.ErrTransient)
}

func (l *lostAnswers) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	if l.getFails != nil && l.getFails(name) {
		return nil, bucket.Attrs{}, fmt.Errorf("get %q: %w", name, bucket.ErrTransient)
	}
	return l.Bucket.Get(ctx, name)
}

func (l *lostAnswers) GetRange(ctx context.Context, name string, gen, off, n int64) ([]byte, error) {
	if l.getFails != nil && l.getFails(name) {
		return nil, fmt.Errorf("get range %q: %w", name, bucket.ErrTransient)
	}
	return l.Bucket.GetRange(ctx, name, gen, off, n)
}

func isManifest(name string, _ bucket.Condition) bool { return strings.HasPrefix(name, "_manifests/") }

// TestCommitAnswerLost: a run reports committed exactly when its manifest is
// stored, also when the manifest write ends in an ambiguous error.
func TestCommitAnswerLost(t *testing.T) {
	tests := []struct {
		what       string
		apply      bool
		readFails  bool
		committed  bool
		errUnknown bool
	}{
		{"stored, answer lost", true, false, true, false},
		{"not stored", false, false, false, false},
		{"stored, answer lost, reading back fails", true, true, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.what, func(t *testing.T) {
			inner := newLocal(t)
			lb := &lostAnswers{Bucket: inner, pick: isManifest, apply: tc.apply}
			if tc.readFails {
				lb.getFails = func(name string) bool { return strings.HasPrefix(name, "_manifests/") }
			}
			h := newHarness(t, lb, smallPopulation())
			from, to := h.opts.From, h.opts.To
			m, err := pipeline.Run(context.Background(), h.config(from, to))
			if len(lb.lost) != 1 {
				t.Fatalf("%d manifest writes lost, want 1", len(lb.lost))
			}
			stored, _ := inner.List(context.Background(), "_manifests/")
			if (len(stored) == 1) != tc.apply {
				t.Fatalf("%d manifests stored", len(stored))
			}
			if tc.committed {
				if err != nil || m == nil {
					t.Fatalf("manifest stored but the run reports: manifest %v, error %v", m != nil, err)
				}
				h.expectFaithful(from, to)
				return
			}
			if err == nil || m != nil {
				t.Fatalf("run reports committed (error %v)", err)
			}
			if got := errors.Is(err, pipeline.ErrCommitUnknown); got != tc.errUnknown {
				t.Errorf("error %v: ErrCommitUnknown %v, want %v", err, got, tc.errUnknown)
			}
			if !strings.Contains(err.Error(), "_manifests/") || !bucket.IsTransient(err) {
				t.Errorf("error %v does not name the manifest and the transient cause", err)
			}
			// The next run finds out and completes the dataset.
			lb.pick, lb.getFails = nil, nil
			h.run(from, to)
			h.expectFaithful(from, to)
		})
	}
}

// TestHeartbeatAnswerLost: a lock refresh that was stored although its writer was
// told it failed does not make the next refresh lose the lock: the lock still
// names this run, so the run adopts its generation and commits.
func TestHeartbeatAnswerLost(t *testing.T) {
	var (
		mu     sync.Mutex
		beats  int
		enough = make(chan struct{})
	)
	lb := &lostAnswers{Bucket: newLocal(t), apply: true}
	lb.pick = func(name string, cond bucket.Condition) bool {
		if !strings.HasPrefix(name, "_locks/") || cond.GenerationMatch == 0 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		beats++
		if beats == 3 {
			close(enough)
		}
		return beats == 1 // the first refresh is stored, its answer lost
	}
	h := newHarness(t, lb, smallPopulation())
	from, to := h.opts.From, h.opts.To
	cfg := h.config(from, to)
	cfg.LockTTL = 1200 * time.Millisecond // refresh every 400 ms
	var once sync.Once
	cfg.BeforeWrite = func(name string) {
		if strings.HasPrefix(name, "_inflight/") {
			once.Do(func() { <-enough }) // write only after two more refreshes
		}
	}
	m, err := pipeline.Run(context.Background(), cfg)
	if err != nil || m == nil {
		t.Fatalf("run: manifest %v, error %v", m != nil, err)
	}
	if len(lb.lost) != 1 {
		t.Fatalf("%d lock refreshes lost, want 1", len(lb.lost))
	}
	h.expectFaithful(from, to)
	if l, _ := lb.List(context.Background(), "_locks/"); len(l) != 0 {
		t.Errorf("lock not released: %v", l)
	}
}
