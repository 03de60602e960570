package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

var errInjected = errors.New("injected storage error")

// flakyBucket fails chosen operations: writes of one object (a run dies there), and,
// once a run has committed its manifest, the next deletes of tombstones or listings
// of deletions/ (its clean-up).
type flakyBucket struct {
	bucket.Bucket
	mu          sync.Mutex
	failPut     string // object whose writes fail
	committed   bool   // a manifest was written
	failDeletes int    // tombstone deletes to fail after the commit
	failLists   int    // listings of deletions/ to fail after the commit
}

func (f *flakyBucket) arm(deletes, lists int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed, f.failDeletes, f.failLists = false, deletes, lists
}

func (f *flakyBucket) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	f.mu.Lock()
	fail := name == f.failPut
	f.mu.Unlock()
	if fail {
		return bucket.Attrs{}, errInjected
	}
	attrs, err := f.Bucket.Put(ctx, name, data, cond)
	if err == nil && strings.HasPrefix(name, "_manifests/") {
		f.mu.Lock()
		f.committed = true
		f.mu.Unlock()
	}
	return attrs, err
}

func (f *flakyBucket) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	f.mu.Lock()
	fail := f.committed && f.failDeletes > 0 && strings.HasPrefix(name, "deletions/")
	if fail {
		f.failDeletes--
	}
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return f.Bucket.Delete(ctx, name, cond)
}

func (f *flakyBucket) List(ctx context.Context, prefix string) ([]bucket.Attrs, error) {
	return f.ListFrom(ctx, prefix, "")
}

func (f *flakyBucket) ListFrom(ctx context.Context, prefix, start string) ([]bucket.Attrs, error) {
	f.mu.Lock()
	fail := f.committed && f.failLists > 0 && prefix == "deletions/"
	if fail {
		f.failLists--
	}
	f.mu.Unlock()
	if fail {
		return nil, errInjected
	}
	return f.Bucket.ListFrom(ctx, prefix, start)
}

// TestCleanupFailureKeepsMarker: a run that resolves a crashed run removes the
// crashed run's marker only once its tombstones are gone. When a tombstone delete or
// the listing fails, the marker stays; later runs retry the clean-up and never record
// those deletions again, however many clean-ups fail in a row.
func TestCleanupFailureKeepsMarker(t *testing.T) {
	cases := []struct {
		name           string
		deletes, lists int
	}{
		{"a tombstone delete fails", 1, 0},
		{"the listing fails", 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fb := &flakyBucket{Bucket: newLocal(t)}
			h := newHarness(t, fb, smallPopulation())
			from, to := h.opts.From, h.opts.To
			h.run(from, to)

			// A run dies after writing its tombstone, before the partition that drops
			// the row.
			_, _, feb := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))
			deleted := feb[0].ID
			must(t, h.srv.DeleteTransaction(deleted))
			fb.failPut = "transactions/month=2026-02/part-000.parquet"
			if _, err := pipeline.Run(context.Background(), h.config(from, to)); !errors.Is(err, errInjected) {
				t.Fatalf("run that dies before its partition write: %v", err)
			}
			fb.failPut = ""
			markers := mustList(t, fb, "_inflight/")
			if len(markers) != 1 {
				t.Fatalf("crashed run left %d markers", len(markers))
			}
			crashed := markers[0].Name
			expectTombstones(t, fb, map[string]int{deleted: 1})

			// Two runs whose clean-up fails once each: the crashed run's marker stays,
			// and neither records the deletion again.
			for i := range 2 {
				fb.arm(c.deletes, c.lists)
				m := h.run(from, to)
				if want := int64(1 - i); m.Counts.Deleted != want {
					t.Errorf("run %d: %d deletions, want %d", i+1, m.Counts.Deleted, want)
				}
				if got := mustList(t, fb, "_inflight/"); len(got) != 1 || got[0].Name != crashed {
					t.Fatalf("run %d: markers %v after a failed clean-up, want %s kept", i+1, got, crashed)
				}
			}
			fb.arm(0, 0)
			m := h.run(from, to)
			if m.Counts.Deleted != 0 {
				t.Errorf("clean-up run recorded %d deletions", m.Counts.Deleted)
			}
			if got := mustList(t, fb, "_inflight/"); len(got) != 0 {
				t.Errorf("markers %v left after a successful clean-up", got)
			}
			expectTombstones(t, fb, map[string]int{deleted: 1})
			h.expectFaithful(from, to)
		})
	}
}
