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

// countingBucket counts reads of each object, whole or by range.
type countingBucket struct {
	bucket.Bucket
	mu    sync.Mutex
	gets  map[string]int
	lists map[string]int // by prefix, made on the first List
	names map[string]int // names listed, by prefix
}

func (c *countingBucket) List(ctx context.Context, prefix string) ([]bucket.Attrs, error) {
	return c.ListFrom(ctx, prefix, "")
}

func (c *countingBucket) ListFrom(ctx context.Context, prefix, start string) ([]bucket.Attrs, error) {
	c.mu.Lock()
	if c.lists == nil {
		c.lists = map[string]int{}
	}
	c.lists[prefix]++
	c.mu.Unlock()
	list, err := c.Bucket.ListFrom(ctx, prefix, start)
	c.mu.Lock()
	if c.names == nil {
		c.names = map[string]int{}
	}
	c.names[prefix] += len(list)
	c.mu.Unlock()
	return list, err
}

// listedNames returns how many names listings of prefix returned, and forgets the
// count.
func (c *countingBucket) listedNames(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.names[prefix]
	delete(c.names, prefix)
	return n
}

// listed returns how many times prefix was listed, and forgets the count.
func (c *countingBucket) listed(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.lists[prefix]
	delete(c.lists, prefix)
	return n
}

func (c *countingBucket) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	c.mu.Lock()
	c.gets[name]++
	c.mu.Unlock()
	return c.Bucket.Get(ctx, name)
}

func (c *countingBucket) GetRange(ctx context.Context, name string, gen, off, n int64) ([]byte, error) {
	c.mu.Lock()
	c.gets[name]++
	c.mu.Unlock()
	return c.Bucket.GetRange(ctx, name, gen, off, n)
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

// readCounter counts the bytes read from each object, and which objects were read
// whole (Get) rather than by range (GetRange).
type readCounter struct {
	bucket.Bucket
	mu    sync.Mutex
	reads map[string]int64 // bytes read, by object
	whole map[string]int   // whole reads, by object
}

func (c *readCounter) note(name string, n int, whole bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads[name] += int64(n)
	if whole {
		c.whole[name]++
	}
}

func (c *readCounter) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	data, a, err := c.Bucket.Get(ctx, name)
	c.note(name, len(data), true)
	return data, a, err
}

func (c *readCounter) GetRange(ctx context.Context, name string, gen, off, n int64) ([]byte, error) {
	data, err := c.Bucket.GetRange(ctx, name, gen, off, n)
	c.note(name, len(data), false)
	return data, err
}

// take returns and resets the bytes read from transactions partitions outside
// February 2026, how many of those partitions were read, and which were read whole.
func (c *readCounter) take() (bytes int64, objects int, whole []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, n := range c.reads {
		if strings.HasPrefix(name, "transactions/") && !strings.Contains(name, "month=2026-02") {
			bytes += n
			objects++
			for range c.whole[name] {
				whole = append(whole, name)
			}
		}
	}
	c.reads, c.whole = map[string]int64{}, map[string]int{}
	return bytes, objects, whole
}

// TestScanReadsIDsOnly: when a transaction moves in from a month the run did not read,
// the scan of the other partitions reads their footers and id columns only (by range),
// not whole files, and still finds the move; the manifest counts the bytes read.
func TestScanReadsIDsOnly(t *testing.T) {
	rc := &readCounter{Bucket: newLocal(t), reads: map[string]int64{}, whole: map[string]int{}}
	h := newHarness(t, rc, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	feb := date(2026, 2, 1)
	rc.take()
	var scanned int64 // bytes the partitions outside February hold
	list, err := rc.List(context.Background(), "transactions/")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if !strings.Contains(a.Name, "month=2026-02") {
			scanned += a.Size
		}
	}

	nov, _, _ := h.pickAccount(date(2025, 11, 1), feb)
	w := h.srv.Settled(nov, date(2025, 11, 1).Add(-1), date(2025, 11, 30))
	if err := h.srv.MoveDate(w[0].ID, date(2026, 2, 3)); err != nil {
		t.Fatal(err)
	}
	m := h.run(feb, to)
	if m.Counts.Moved != 1 || m.Counts.Inserted != 0 || m.Counts.Deleted != 0 {
		t.Fatalf("moved in from November: counts %+v", m.Counts)
	}
	got, objects, whole := rc.take()
	h.expectFaithful(from, to)
	t.Logf("scan of %d partitions (%d bytes) read %d bytes; read whole: %v", objects, scanned, got, whole)
	if objects == 0 {
		t.Fatal("a transaction moved in from an unread month, but no other partition was read")
	}
	if got >= scanned {
		t.Errorf("the run read %d bytes of the partitions outside its window, which hold %d: want fewer", got, scanned)
	}
	// Only the November partition, which loses the row, is read whole, to be rewritten.
	if len(whole) != 1 || !strings.Contains(whole[0], "month=2025-11") {
		t.Errorf("partitions outside the window read whole: %v, want November's once", whole)
	}
	if m.Reads.Bytes <= 0 || m.Reads.Ranges < int64(2*objects) {
		t.Errorf("manifest reads = %+v, want the bytes and at least two ranged reads per partition scanned", m.Reads)
	}
}

// rewriteAfterScan is a bucket on which another writer (one that ignores the lock)
// rewrites an object, with the same bytes, after the run scanned it by range and
// before the run reads it whole.
type rewriteAfterScan struct {
	bucket.Bucket
	other   bucket.Bucket
	target  string
	mu      sync.Mutex
	scanned bool
	done    bool
	foreign int64 // the generation the other writer left
}

func (f *rewriteAfterScan) GetRange(ctx context.Context, name string, gen, off, n int64) ([]byte, error) {
	f.mu.Lock()
	f.scanned = f.scanned || name == f.target
	f.mu.Unlock()
	return f.Bucket.GetRange(ctx, name, gen, off, n)
}

func (f *rewriteAfterScan) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	f.mu.Lock()
	if name == f.target && f.scanned && !f.done {
		f.done = true
		whole, _, err := f.other.Get(ctx, name)
		if err == nil {
			var a bucket.Attrs
			a, err = f.other.Put(ctx, name, whole, bucket.Condition{})
			f.foreign = a.Generation
		}
		if err != nil {
			f.mu.Unlock()
			return nil, bucket.Attrs{}, err
		}
	}
	f.mu.Unlock()
	return f.Bucket.Get(ctx, name)
}

// TestForeignWriteAfterScan: a partition the scan found a moved row in is rewritten
// only in the generation scanned; another writer's version in between is a conflict,
// and stays as that writer left it.
func TestForeignWriteAfterScan(t *testing.T) {
	dir := t.TempDir()
	local, err := bucket.NewLocal(dir)
	must(t, err)
	other, err := bucket.NewLocal(dir)
	must(t, err)
	target := "transactions/month=2025-11/part-000.parquet"
	h := newHarness(t, local, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	feb := date(2026, 2, 1)
	nov, _, _ := h.pickAccount(date(2025, 11, 1), feb)
	w := h.srv.Settled(nov, date(2025, 11, 1).Add(-1), date(2025, 11, 30))
	must(t, h.srv.MoveDate(w[0].ID, date(2026, 2, 3)))

	fb := &rewriteAfterScan{Bucket: local, other: other, target: target}
	cfg := h.config(feb, to)
	cfg.Out = fb
	m, err := pipeline.Run(context.Background(), cfg)
	if !fb.done {
		t.Fatal("the run did not scan November")
	}
	if err == nil || m != nil || !errors.Is(err, bucket.ErrConflict) || !strings.Contains(err.Error(), target) {
		t.Fatalf("a foreign write between the scan of %s and its rewrite: manifest %v, err %v", target, m != nil, err)
	}
	cur, err := local.Attrs(context.Background(), target)
	must(t, err)
	if cur.Generation != fb.foreign {
		t.Errorf("%s is generation %d, want the foreign writer's %d", target, cur.Generation, fb.foreign)
	}
}
