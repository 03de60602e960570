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
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// twoAccounts returns two accounts with transactions in January and February 2026.
func (h *harness) twoAccounts() (a, b string) {
	h.t.Helper()
	jan, feb := date(2026, 1, 1), date(2026, 2, 1)
	wj, wf := akahu.LocalDates(jan, feb.AddDate(0, 0, -1), auckland), akahu.LocalDates(feb, feb.AddDate(0, 1, -1), auckland)
	var out []string
	for _, u := range h.srv.Users() {
		for _, id := range h.srv.AccountIDs(u.ID) {
			if len(h.srv.Settled(id, wj.Start, wj.End)) >= 3 && len(h.srv.Settled(id, wf.Start, wf.End)) >= 3 {
				out = append(out, id)
			}
		}
	}
	if len(out) < 2 {
		h.t.Fatal("fewer than two accounts with transactions in January and February")
	}
	return out[0], out[1]
}

// newLagged sets up two accounts A and B of one bucket whose data is complete
// through different dates: a backfill, then a run 40 days on during which B's bank
// is down while A gets a transaction posted in March. The next incremental run
// re-reads January to April for B, March and April only for A. It returns B and A's
// March transaction.
func newLagged(t *testing.T, b bucket.Bucket) (h *harness, bAcct, march string) {
	t.Helper()
	h = newHarness(t, b, smallPopulation())
	h.accountWalks = true // the faults target one account's endpoints
	h.run(h.opts.From, h.opts.To)
	a, bAcct := h.twoAccounts()
	march = h.srv.AddTransaction(a, date(2026, 3, 20), "-4.50", "posted in March")
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100000,
		PathContains: "/accounts/" + bAcct + "/transactions?"})
	h.shift.Add(int64(40 * 24 * time.Hour))
	if _, err := pipeline.Run(context.Background(), h.config(time.Time{}, time.Time{})); !errors.Is(err, pipeline.ErrPartial) {
		t.Fatalf("run during B's outage: %v", err)
	}
	h.srv.ClearFaults()
	return h, bAcct, march
}

// TestRereadOfOwnPartition: a neighbour or by-id re-read that reaches a partition
// this run already merged is merged with what the run holds or wrote, never as if
// another writer had changed it. Account B's data lags (its bank was down), so the
// run re-reads January and February for B only; account A, in the same bucket, has
// a transaction that moved from March into one of those months.
func TestRereadOfOwnPartition(t *testing.T) {
	cases := []struct {
		name string
		// change mutates B's transactions before the run; it returns the date A's
		// March transaction moves to.
		change              func(h *harness, bJan, bFeb []akahutest.Txn) time.Time
		moved, deleted, upd int64
	}{
		{"neighbour re-read of a held partition", func(h *harness, _, bFeb []akahutest.Txn) time.Time {
			must(h.t, h.srv.DeleteTransaction(bFeb[0].ID)) // February loses a row: held to the end
			return date(2026, 2, 10)                       // found by the re-read of A's month before
		}, 1, 1, 0},
		{"by-id re-read of a held partition", func(h *harness, bJan, _ []akahutest.Txn) time.Time {
			must(h.t, h.srv.DeleteTransaction(bJan[0].ID)) // January loses a row: held to the end
			return date(2026, 1, 12)                       // not in February: found by id
		}, 1, 1, 0},
		{"re-read of a partition the run wrote", func(h *harness, _, bFeb []akahutest.Txn) time.Time {
			must(h.t, h.srv.SetDescription(bFeb[0].ID, "corrected")) // February is written early
			return date(2026, 2, 10)
		}, 1, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			heldCases(t, func(t *testing.T, heldBytes int64) {
				b := newLocal(t)
				h, bAcct, march := newLagged(t, b)
				h.heldBytes = heldBytes
				from := h.opts.From
				jan, feb := date(2026, 1, 1), date(2026, 2, 1)
				wj, wf := akahu.LocalDates(jan, feb.AddDate(0, 0, -1), auckland), akahu.LocalDates(feb, feb.AddDate(0, 1, -1), auckland)
				newDate := c.change(h, h.srv.Settled(bAcct, wj.Start, wj.End), h.srv.Settled(bAcct, wf.Start, wf.End))
				must(t, h.srv.MoveDate(march, newDate))

				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				m, err := pipeline.Run(ctx, h.config(time.Time{}, time.Time{}))
				if err != nil {
					t.Fatalf("run re-reading its own partitions: %v", err)
				}
				if m.Counts.Moved != c.moved || m.Counts.Deleted != c.deleted || m.Counts.Updated != c.upd || m.Counts.Inserted != 0 {
					t.Errorf("counts %+v, want moved %d deleted %d updated %d, nothing inserted", m.Counts, c.moved, c.deleted, c.upd)
				}
				rows := h.expectFaithful(from, date(2026, 4, 10))
				if r, ok := rows[march]; !ok || r.DateLocal != newDate.Format(time.DateOnly) {
					t.Errorf("moved transaction: present %v, dated %s in %s", ok, r.DateLocal, r.Object)
				}
				seen := map[string]int{}
				for _, ow := range m.Objects {
					if seen[ow.Path]++; seen[ow.Path] == 2 {
						t.Errorf("the manifest lists %s more than once: %+v", ow.Path, m.Objects)
					}
				}
				rep, err := pipeline.Verify(context.Background(), b)
				if err != nil || !rep.OK() {
					t.Errorf("verify: %v %v", err, rep.Problems)
				}
				if c.deleted > 0 {
					h.expectParked(m)
				}
			})
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// foreignRewrite is a bucket on which another writer (one that ignores the lock)
// rewrites an object right after the run first wrote it.
type foreignRewrite struct {
	bucket.Bucket
	other  bucket.Bucket
	target string
	mu     sync.Mutex
	done   bool
}

func (f *foreignRewrite) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	attrs, err := f.Bucket.Put(ctx, name, data, cond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && name == f.target && !f.done {
		f.done = true
		if _, err := f.other.Put(ctx, name, data, bucket.Condition{}); err != nil {
			return attrs, err
		}
	}
	return attrs, err
}

// TestForeignWriteBetweenOwnWrites: a partition the run wrote and then re-reads must
// still be the generation the run left; another writer's change in between is a
// conflict, not something to merge on top of.
func TestForeignWriteBetweenOwnWrites(t *testing.T) {
	dir := t.TempDir()
	local, err := bucket.NewLocal(dir)
	must(t, err)
	other, err := bucket.NewLocal(dir)
	must(t, err)
	target := "transactions/month=2026-02/part-000.parquet"
	fb := &foreignRewrite{Bucket: local, other: other, target: target}
	h, bAcct, march := newLagged(t, local)
	feb := date(2026, 2, 1)
	wf := akahu.LocalDates(feb, feb.AddDate(0, 1, -1), auckland)
	must(t, h.srv.SetDescription(h.srv.Settled(bAcct, wf.Start, wf.End)[0].ID, "corrected")) // February is written early
	must(t, h.srv.MoveDate(march, date(2026, 2, 10)))                                        // and re-read for A
	cfg := h.config(time.Time{}, time.Time{})
	cfg.Out = fb
	m, err := pipeline.Run(context.Background(), cfg)
	if !fb.done {
		t.Fatal("the run did not write February")
	}
	if err == nil || m != nil || !errors.Is(err, bucket.ErrConflict) || !strings.Contains(err.Error(), target) {
		t.Fatalf("a foreign write between the run's write and its re-read: err %v", err)
	}
}
