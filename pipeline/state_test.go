package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// TestStateNeverResets: the per-account incremental state survives what used to reset
// it. An ad-hoc run over one account and an old month, and then a change of shard
// count, leave every account's covered_through where it was, so the next daily runs
// re-read only the lookback, not from the ad-hoc month or the whole history.
func TestStateNeverResets(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	cfg := h.config(from, to)
	cfg.Buckets = 4
	if _, err := pipeline.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	before, err := pipeline.CoveredThrough(context.Background(), b)
	if err != nil || len(before) == 0 {
		t.Fatalf("covered_through after the backfill: %v, %v", before, err)
	}

	// An ad-hoc run over one account and an old month.
	acct, _, _ := h.pickAccount(date(2025, 10, 1), date(2025, 11, 1))
	adhoc := h.config(date(2025, 10, 1), date(2025, 10, 31))
	adhoc.Accounts = []string{acct}
	if _, err := pipeline.Run(context.Background(), adhoc); err != nil {
		t.Fatal(err)
	}
	after, err := pipeline.CoveredThrough(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for id, d := range before {
		if after[id] != d {
			t.Errorf("ad-hoc run moved %s's covered_through %s → %s (it only moves forward)", id, d, after[id])
		}
	}

	// The lookback re-reads at most the month before the newest covered date.
	earliest := to.AddDate(0, 0, -pipeline.DefaultLookback-1)
	earliest = time.Date(earliest.Year(), earliest.Month(), 1, 0, 0, 0, 0, auckland)
	checkDaily := func(what string, m *pipeline.Manifest) {
		t.Helper()
		if len(m.Ranges) == 0 {
			t.Fatalf("%s: no coverage", what)
		}
		for _, rg := range m.Ranges {
			if rg.From < earliest.Format(time.DateOnly) {
				t.Errorf("%s re-read %d account(s) from %s; the state says they are covered through %s (lookback from %s)",
					what, rg.Accounts, rg.From, to.Format(time.DateOnly), earliest.Format(time.DateOnly))
			}
		}
	}
	daily := h.config(time.Time{}, time.Time{})
	daily.Buckets = 4
	m, err := pipeline.Run(context.Background(), daily)
	if err != nil {
		t.Fatal(err)
	}
	checkDaily("the daily run after an ad-hoc run", m)

	// 1 → 2 shards: each shard's first run finds its buckets' state.
	if _, err := pipeline.Reshard(context.Background(), pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	for shard := range 2 {
		c := h.config(time.Time{}, time.Time{})
		c.Buckets, c.Shard, c.Shards = 4, shard, 2
		m, err := pipeline.Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		checkDaily("shard "+string(rune('0'+shard))+"'s first run after the reshard", m)
	}
	h.expectFaithful(from, to)
}
