package pipeline_test

import (
	"context"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// TestRecoveryFinishesAHalfMove: a run that moves a row into the month it reads, from a
// month it does not read, writes the new partition first and the one the row left last.
// Killed in between, it leaves the row in both. The next run (recovering it) reads the
// new month, where the row is no longer new, and must still take it out of the old one:
// no duplicate, and no tombstone, since nothing was deleted.
func TestRecoveryFinishesAHalfMove(t *testing.T) {
	ctx := context.Background()
	fb := &flakyBucket{Bucket: newLocal(t)}
	h := newHarness(t, fb, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	feb, oct := date(2026, 2, 1), date(2025, 10, 1)
	octEnd := oct.AddDate(0, 1, -1)
	_, febTx, _ := h.pickAccount(feb, oct)
	id := febTx[2].ID
	left := byID(t, readRows(t, fb, "transactions/"))[id].Object
	must(t, h.srv.MoveDate(id, date(2025, 10, 20)))

	// The run reads October only; the row arrives there new, the scan finds it in
	// February, and February's rewrite (the last data write) fails.
	fb.failPut = left
	if _, err := pipeline.Run(ctx, h.config(oct, octEnd)); err == nil {
		t.Fatal("the run whose write of the partition the row left failed reported success")
	}
	var copies []string
	for _, r := range readRows(t, fb, "transactions/") {
		if r.ID == id {
			copies = append(copies, r.Object)
		}
	}
	if len(copies) != 2 {
		t.Fatalf("after the failed run the row is in %v; the test needs it half-moved (in 2 partitions)", copies)
	}

	fb.failPut = ""
	m := h.run(oct, octEnd)
	rows := h.expectFaithful(from, to) // fails on a duplicate id
	if r := rows[id]; r.DateLocal != "2025-10-20" {
		t.Errorf("%s dated %s in %s; want 2025-10-20", id, r.DateLocal, r.Object)
	}
	if m.Counts.Deleted != 0 || m.Counts.Inserted != 0 || m.Counts.Moved != 1 {
		t.Errorf("recovering run counts %+v; want the move finished and nothing inserted or deleted", m.Counts)
	}
	expectTombstones(t, fb, map[string]int{})
}
