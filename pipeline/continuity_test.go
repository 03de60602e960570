package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestIncrementalPerAccount: incremental runs start each account from the date its
// data is complete through. An account no run has extracted gets its history; an
// account that failed through runs spanning more than the lookback has its gap re-read
// once it recovers.
func TestIncrementalPerAccount(t *testing.T) {
	h := newHarness(t, newLocal(t), smallPopulation())
	h.accountWalks = true // the faults target one account's endpoints
	from, to := h.opts.From, h.opts.To
	acct, _, _ := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))

	// 1. The first run extracts one account only.
	cfg := h.config(from, to)
	cfg.Accounts = []string{acct}
	if _, err := pipeline.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// 2. An incremental run picks up every other account's whole history.
	m := h.run(time.Time{}, time.Time{})
	h.expectFaithful(from, to)
	through := func() map[string]string {
		t.Helper()
		ct, err := pipeline.CoveredThrough(context.Background(), h.b)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	covered := through()[acct]
	if ct := through(); covered != m.Range.End || len(ct) < 6 {
		t.Fatalf("covered_through %v, want every account through %s", ct, m.Range.End)
	}

	// 3. The account's bank is down for two runs, 40 days apart; meanwhile it posts.
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100000, PathContains: "/accounts/" + acct + "/transactions?"})
	late := h.srv.AddTransaction(acct, to.AddDate(0, 0, 10), "-12.34", "posted during the outage")
	for range 2 {
		h.shift.Add(int64(40 * 24 * time.Hour))
		_, err := pipeline.Run(context.Background(), h.config(time.Time{}, time.Time{}))
		if !errors.Is(err, pipeline.ErrPartial) {
			t.Fatalf("run during the outage: %v", err)
		}
		if got := through()[acct]; got != covered {
			t.Fatalf("a failed account's covered_through moved: %s → %s", covered, got)
		}
	}
	// 4. It recovers: the next run re-reads from before the outage, not just the last
	// 30 days, and the transaction posted during the outage arrives.
	h.srv.ClearFaults()
	h.shift.Add(int64(10 * 24 * time.Hour))
	m = h.run(time.Time{}, time.Time{})
	rows := h.expectFaithful(from, to.AddDate(0, 0, 95))
	if _, ok := rows[late]; !ok {
		t.Fatalf("the transaction posted during the outage is missing (coverage %+v)", m.Ranges)
	}
	if got := through()[acct]; got != m.Range.End {
		t.Errorf("covered_through did not advance after recovery: %s", got)
	}
}
