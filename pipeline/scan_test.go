package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// countingBucket counts reads of each object.
type countingBucket struct {
	bucket.Bucket
	mu   sync.Mutex
	gets map[string]int
}

func (c *countingBucket) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	c.mu.Lock()
	c.gets[name]++
	c.mu.Unlock()
	return c.Bucket.Get(ctx, name)
}

// untouchedReads counts reads of transactions partitions outside February 2026.
func (c *countingBucket) untouchedReads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for name, k := range c.gets {
		if strings.HasPrefix(name, "transactions/") && !strings.Contains(name, "month=2026-02") {
			n += k
		}
	}
	c.gets = map[string]int{}
	return n
}

// TestScanOnlyWhenAMoveIsPossible: a daily run that sees only transactions Akahu
// created after the last run reads no partition outside its window; one that sees a
// transaction Akahu knew before (it moved in) scans them and removes the old copy.
func TestScanOnlyWhenAMoveIsPossible(t *testing.T) {
	cb := &countingBucket{Bucket: newLocal(t), gets: map[string]int{}}
	h := newHarness(t, cb, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	feb := date(2026, 2, 1)
	acct, _, _ := h.pickAccount(date(2025, 11, 1), feb)
	cb.untouchedReads()

	h.srv.AddTransaction(acct, date(2026, 2, 27), "-3.20", "Coffee")
	if m := h.run(feb, to); m.Counts.Inserted != 1 || m.Counts.Moved != 0 {
		t.Fatalf("new transaction: counts %+v", m.Counts)
	}
	if n := cb.untouchedReads(); n != 0 {
		t.Errorf("a run with only new transactions read %d partitions outside its window", n)
	}
	h.expectFaithful(from, to)

	nov, _, _ := h.pickAccount(date(2025, 11, 1), feb)
	w := h.srv.Settled(nov, date(2025, 11, 1).Add(-1), date(2025, 11, 30))
	if err := h.srv.MoveDate(w[0].ID, date(2026, 2, 2)); err != nil {
		t.Fatal(err)
	}
	if m := h.run(feb, to); m.Counts.Moved != 1 || m.Counts.Inserted != 0 {
		t.Fatalf("moved in from November: counts %+v", m.Counts)
	}
	if n := cb.untouchedReads(); n == 0 {
		t.Error("a transaction moved in from an unread month, but no other partition was scanned")
	}
	h.expectFaithful(from, to)
}
