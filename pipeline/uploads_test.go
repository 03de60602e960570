package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// TestWritesOverlapMerges: a merged partition's write does not hold up its merger.
// With a bucket that takes 200 ms to answer each read and write of a partition,
// more partitions are written at once than there are mergers (which alone would
// write DefaultMergers at a time), never more than DefaultUploads, and the dataset
// is what Akahu serves.
func TestWritesOverlapMerges(t *testing.T) {
	slow := &pipeline.SlowBucket{Bucket: newLocal(t), Delay: 200 * time.Millisecond, Prefix: "transactions/"}
	opts := smallPopulation()
	opts.Users = 6
	h := newHarness(t, slow, opts)
	from, to := h.opts.From, h.opts.To
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	if err != nil {
		t.Fatal(err)
	}
	h.expectFaithful(from, to)
	seen := slow.Most()
	t.Logf("%d objects written, at most %d partition writes at once", m.Uploads.Objects, seen)
	if seen <= pipeline.DefaultMergers || seen > pipeline.DefaultUploads {
		t.Errorf("at most %d partition writes at once: want more than the %d mergers and at most %d", seen, pipeline.DefaultMergers, pipeline.DefaultUploads)
	}
}

// TestSnapshotWritesOverlap: the pending and accounts snapshot objects of a run's
// buckets are read and written several at once, not one bucket after another (on GCS
// each costs a read and a write of tens of milliseconds, at the end of every run),
// never more than DefaultUploads at once, and they hold what Akahu serves.
func TestSnapshotWritesOverlap(t *testing.T) {
	for _, prefix := range []string{"pending/", "accounts/"} {
		t.Run(prefix, func(t *testing.T) {
			slow := &pipeline.SlowBucket{Bucket: newLocal(t), Delay: 100 * time.Millisecond, Prefix: prefix}
			h, m := backfillEightBuckets(t, slow)
			h.expectFaithful(h.opts.From, h.opts.To)
			list, err := slow.List(context.Background(), prefix)
			if err != nil {
				t.Fatal(err)
			}
			seen := slow.Most()
			t.Logf("%d %s objects, at most %d of their reads and writes at once", len(list), prefix, seen)
			if len(list) < 4 || seen < 4 || seen > pipeline.DefaultUploads {
				t.Errorf("%d %s objects, at most %d reads and writes at once: want at least 4 objects, 4 to %d at once",
					len(list), prefix, seen, pipeline.DefaultUploads)
			}
			if prefix == "pending/" {
				rows := pendingRows(t, h.b)
				var want int64
				for _, id := range accountsWithPending(h) {
					want += int64(len(h.srv.Pending(id)))
					if rows[id] != len(h.srv.Pending(id)) {
						t.Errorf("account %s: %d pending rows, Akahu has %d", id, rows[id], len(h.srv.Pending(id)))
					}
				}
				if m.Counts.Pending != want {
					t.Errorf("manifest counts %d pending rows, Akahu has %d", m.Counts.Pending, want)
				}
			} else if want := int64(h.opts.Users * h.opts.AccountsPerUser); m.Counts.Accounts != want {
				t.Errorf("manifest counts %d account rows; want %d", m.Counts.Accounts, want)
			}
		})
	}
}

// TestHeldWritesOverlap: the partitions a run held to decide deletions (here one
// in each of 8 buckets, each losing a transaction Akahu deleted) are written several
// at once (7 here unloaded; at least 2 asked, so that -race on a loaded machine,
// encoding slowly, passes) after the tombstones, not one after another, never more than
// DefaultUploads at once; the dataset is what Akahu serves and the deletions are
// counted once.
func TestHeldWritesOverlap(t *testing.T) {
	local := newLocal(t)
	h, _ := backfillEightBuckets(t, &pipeline.SlowBucket{Bucket: local})
	to := h.opts.To
	month := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC)
	for _, u := range h.srv.Users() {
		txs := h.srv.SettledUser(u.ID, month, to.AddDate(0, 0, 1))
		if len(txs) == 0 {
			t.Fatalf("user %s has no transaction in %s", u.ID, month.Format("2006-01"))
		}
		must(t, h.srv.DeleteTransaction(txs[0].ID))
	}
	// 300 ms a write: under -race on a loaded machine an encoding takes tens of ms.
	slow := &pipeline.SlowBucket{Bucket: local, Delay: 300 * time.Millisecond, Prefix: "transactions/", PutsOnly: true}
	cfg := h.config(month, to)
	cfg.Out = slow
	m, err := pipeline.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.expectFaithful(h.opts.From, to)
	seen := slow.Most()
	t.Logf("%d deletions, at most %d partition writes at once", m.Counts.Deleted, seen)
	if m.Counts.Deleted != int64(len(h.srv.Users())) || seen < 2 || seen > pipeline.DefaultUploads {
		t.Errorf("%d deletions, at most %d partition writes at once: want %d deletions, 2 to %d writes at once (one after another: 1)",
			m.Counts.Deleted, seen, len(h.srv.Users()), pipeline.DefaultUploads)
	}
}

// TestStateWritesOverlap: the state objects a run saves for its buckets (users,
// members and coverage objects) are written several at once, each kind after the one
// before it (members before coverage: a coverage entry no members object names is
// never read), not one bucket after another; the next run continues from them.
func TestStateWritesOverlap(t *testing.T) {
	slow := &pipeline.SlowBucket{Bucket: newLocal(t), Delay: 100 * time.Millisecond, Prefix: "_state/bucket-", PutsOnly: true}
	h, _ := backfillEightBuckets(t, slow)
	list, err := slow.List(context.Background(), "_state/bucket-")
	if err != nil {
		t.Fatal(err)
	}
	seen := slow.Most()
	t.Logf("%d state objects, at most %d written at once", len(list), seen)
	if len(list) < 12 || seen < 4 || seen > pipeline.DefaultUploads {
		t.Errorf("%d state objects, at most %d written at once: want at least 12 objects, 4 to %d at once", len(list), seen, pipeline.DefaultUploads)
	}
	// The next day's run starts from that state: each account from where it is
	// complete, not from the start of the history.
	h.shift.Add(int64(24 * time.Hour))
	st0 := h.srv.Stats()
	cfg := h.config(time.Time{}, time.Time{})
	cfg.Buckets = 8
	if _, err := pipeline.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got, backfill := h.srv.Stats().ByKind["transactions"]-st0.ByKind["transactions"], st0.ByKind["transactions"]; got*2 > backfill {
		t.Errorf("daily run: %d transaction pages; the backfill read %d: want the daily run to continue from the saved state", got, backfill)
	}
	h.expectFaithful(h.opts.From, h.opts.To)
}

// backfillEightBuckets backfills 8 users of the small population into b, a dataset
// of 8 buckets.
func backfillEightBuckets(t *testing.T, b *pipeline.SlowBucket) (*harness, *pipeline.Manifest) {
	t.Helper()
	opts := smallPopulation()
	opts.Users = 8
	h := newHarness(t, b, opts)
	cfg := h.config(h.opts.From, h.opts.To)
	cfg.Buckets = 8
	m, err := pipeline.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, m
}
