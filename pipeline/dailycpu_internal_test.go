package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// countingAllocator counts the Arrow buffers allocated through it.
type countingAllocator struct {
	memory.Allocator
	n atomic.Int64
}

func (c *countingAllocator) Allocate(size int) []byte {
	c.n.Add(1)
	return c.Allocator.Allocate(size)
}

// TestKeepPendingAppendsOnce: an account's pending items are checked before any of
// them joins its bucket's rows (a bad item leaves nothing of the account), but the
// check costs no Arrow buffers of its own: keepPending allocates exactly what
// appending the items to a bucket's builder allocates, not a second builder's
// buffers and a record built only to be released. A bad item still leaves the
// bucket's rows as they were.
func TestKeepPendingAppendsOnce(t *testing.T) {
	loc := mustZone(t)
	started := time.Date(2026, 3, 1, 9, 0, 0, 0, loc)
	opts := schema.Options{Location: loc, RunID: "run_1", ExtractedAt: started}
	item := func(acct string, k int, amount any) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"_user": "user_1", "_account": acct, "_connection": "conn_1",
			"updated_at": "2026-02-28T10:00:00.000Z", "date": "2026-02-27T11:00:00.000Z",
			"description": fmt.Sprintf("pending %d", k), "amount": amount, "type": "EFTPOS", "meta": map[string]any{"x": k}})
		return b
	}
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(n, " items"), func(t *testing.T) {
			var items []json.RawMessage
			for k := range n {
				items = append(items, item("acc_1", k, -1.25))
			}
			// What appending the items to a bucket's fresh builder allocates.
			base := &countingAllocator{Allocator: memory.NewGoAllocator()}
			b := schema.NewPendingBuilder(base, opts)
			for _, it := range items {
				if err := b.Append(it, "NZD"); err != nil {
					t.Fatal(err)
				}
			}
			b.Release()

			mem := &countingAllocator{Allocator: memory.NewGoAllocator()}
			r := &runner{cfg: Config{Workers: 1, Shards: 1}, loc: loc, b: bucket.NewMemory(), mem: mem,
				runID: "run_1", started: started, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				pend: pendingRows{rows: map[int]*heldRows{}, fetched: map[int][]string{}}}
			defer r.pend.release()
			a := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_1", Currency: "NZD"}}
			r.keepPending(a, items)
			if a.pending != "fetched" {
				t.Fatalf("pending status %q, want fetched", a.pending)
			}
			if got, want := mem.n.Load(), base.n.Load(); got != want {
				t.Errorf("keepPending allocated %d Arrow buffers, want %d (appending the items once)", got, want)
			}
			if got := r.pend.rows[0].b.Len(); got != n {
				t.Errorf("bucket holds %d rows, want %d", got, n)
			}

			// A bad item (amount not a number) leaves the bucket's rows as they were.
			bad := &acctRun{user: &userRun{}, acct: acctInfo{ID: "acc_2", Currency: "NZD"}}
			r.keepPending(bad, append([]json.RawMessage{item("acc_2", 0, -2)}, item("acc_2", 1, true)))
			if bad.pending == "fetched" || !bad.failed() {
				t.Errorf("bad list: pending status %q, failed %v; want kept and failed", bad.pending, bad.failed())
			}
			if got := r.pend.rows[0].b.Len(); got != n {
				t.Errorf("after a bad list the bucket holds %d rows, want %d", got, n)
			}
		})
	}
}
