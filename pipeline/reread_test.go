package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// runWithin runs the pipeline and fails the test if the run does not finish in time
// (a run that waits on itself would hang for ever).
func (h *harness) runWithin(cfg pipeline.Config, d time.Duration) *pipeline.Manifest {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := pipeline.Run(ctx, cfg)
	if err != nil {
		h.t.Fatalf("run %s..%s: %v", cfg.Start, cfg.End, err)
	}
	return m
}

// TestRereadsManyBuckets: with many buckets and one worker, every extraction path
// finishes: the planned windows, the re-reads of neighbouring months (windows listed
// account by account, the partitions of one bucket shared by several accounts) and
// the re-reads of the months transactions moved to, found by id.
func TestRereadsManyBuckets(t *testing.T) {
	opts := smallPopulation()
	opts.AccountsPerUser = 8
	h := newHarness(t, newLocal(t), opts)
	from, to := h.opts.From, h.opts.To
	jan, feb := date(2026, 1, 1), date(2026, 2, 1)
	config := func(start, end time.Time) pipeline.Config {
		cfg := h.config(start, end)
		cfg.Buckets, cfg.Workers = 8, 1
		return cfg
	}
	// Planned windows: a backfill.
	h.runWithin(config(from, to), time.Minute)
	h.expectFaithful(from, to)

	// Two months with one transaction deleted in every account: each account's
	// neighbouring months (December, March) are re-read.
	var deleted, moved []string
	wjan, wfeb := akahu.LocalDates(jan, jan.AddDate(0, 1, -1), auckland), akahu.LocalDates(feb, feb.AddDate(0, 1, -1), auckland)
	for _, u := range h.srv.Users() {
		for _, acct := range h.srv.AccountIDs(u.ID) {
			if tx := h.srv.Settled(acct, wfeb.Start, wfeb.End); len(tx) > 0 {
				if err := h.srv.DeleteTransaction(tx[0].ID); err != nil {
					t.Fatal(err)
				}
				deleted = append(deleted, tx[0].ID)
			}
		}
	}
	if len(deleted) < 10 {
		t.Fatalf("only %d accounts with transactions", len(deleted))
	}
	m := h.runWithin(config(jan, feb.AddDate(0, 1, -1)), time.Minute)
	t.Logf("deletions in %d accounts: %d API requests", len(deleted), m.API.Requests)
	if m.Counts.Deleted != int64(len(deleted)) || m.Counts.Moved != 0 {
		t.Errorf("deletions in every account: counts %+v, want %d deleted", m.Counts, len(deleted))
	}
	h.expectFaithful(from, to)

	// One transaction of every account moved far back (January → October): found by
	// id, and October is re-read for every account.
	for _, u := range h.srv.Users() {
		for _, acct := range h.srv.AccountIDs(u.ID) {
			if tx := h.srv.Settled(acct, wjan.Start, wjan.End); len(tx) > 0 {
				if err := h.srv.MoveDate(tx[0].ID, date(2025, 10, 7)); err != nil {
					t.Fatal(err)
				}
				moved = append(moved, tx[0].ID)
			}
		}
	}
	m = h.runWithin(config(jan, feb.AddDate(0, 1, -1)), time.Minute)
	t.Logf("far moves in %d accounts: %d API requests", len(moved), m.API.Requests)
	if m.Counts.Moved != int64(len(moved)) || m.Counts.Deleted != 0 {
		t.Errorf("far moves in every account: counts %+v, want %d moved", m.Counts, len(moved))
	}
	rows := h.expectFaithful(from, to)
	for _, id := range moved {
		if r := rows[id]; r.DateLocal != "2025-10-07" {
			t.Errorf("moved transaction %s dated %s in %s", id, r.DateLocal, r.Object)
		}
	}
}
