package pipeline_test

import (
	"context"
	"io"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestNewTokenIdentifiedByPendingList: a backfill that meets new tokens, in one
// shard, learns each token's user from the user's pending list (its items' _user)
// instead of GET /me, and keeps that list for the accounts: one request serves both,
// and the list is not asked again. Where the list cannot say (it is empty, or its
// request failed), GET /me does; where the run asks pending lists account by
// account, or plans without extracting (a dry run), it asks /me as before. Every
// other case writes every account's pending rows and the transactions in full.
func TestNewTokenIdentifiedByPendingList(t *testing.T) {
	const retries = akahu.DefaultMaxRetries // the harness client's: a failing request is made 7 times
	cases := []struct {
		name           string
		noPending      bool // the fake serves no pending transactions
		failPending    bool // each user's first pending list fails after every retry
		accountWalks   bool
		dryRun         bool
		wantMe         func(users int64) int64
		wantUserLists  func(users int64) int64 // GET /transactions/pending, retries included
		wantAcctsLists func(txAccts int64) int64
	}{
		{name: "pending lists name the user: no /me",
			wantMe:         func(int64) int64 { return 0 },
			wantUserLists:  func(users int64) int64 { return users },
			wantAcctsLists: func(int64) int64 { return 0 }},
		{name: "empty lists: /me, each list asked once", noPending: true,
			wantMe:         func(users int64) int64 { return users },
			wantUserLists:  func(users int64) int64 { return users },
			wantAcctsLists: func(int64) int64 { return 0 }},
		{name: "failing lists: /me, then asked again", failPending: true,
			wantMe:         func(users int64) int64 { return users },
			wantUserLists:  func(users int64) int64 { return users*(retries+1) + users },
			wantAcctsLists: func(int64) int64 { return 0 }},
		{name: "account walks: /me, lists per account", accountWalks: true,
			wantMe:         func(users int64) int64 { return users },
			wantUserLists:  func(int64) int64 { return 0 },
			wantAcctsLists: func(txAccts int64) int64 { return txAccts }},
		{name: "dry run: /me, no list", dryRun: true,
			wantMe:         func(users int64) int64 { return users },
			wantUserLists:  func(int64) int64 { return 0 },
			wantAcctsLists: func(int64) int64 { return 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := smallPopulation()
			if c.noPending {
				opts.PendingPerAccount = -1
			}
			h := newHarness(t, newLocal(t), opts)
			h.accountWalks = c.accountWalks
			users := int64(len(h.tokens))
			var txAccts int64
			for _, u := range h.srv.Users() {
				for _, id := range h.srv.AccountIDs(u.ID) {
					if info, _ := h.srv.Account(id); info.HasTransactions {
						txAccts++
					}
				}
			}
			if c.failPending {
				h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503,
					PathContains: "/transactions/pending", Count: int(users) * (retries + 1)})
			}
			st0 := h.srv.Stats()
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.DryRun, cfg.PlanOut = c.dryRun, io.Discard
			m, err := pipeline.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			st := h.srv.Stats()
			kind := func(k string) int64 { return st.ByKind[k] - st0.ByKind[k] }
			if got, want := kind("me"), c.wantMe(users); got != want {
				t.Errorf("%d GET /me for %d users; want %d", got, users, want)
			}
			if got, want := kind("pending"), c.wantUserLists(users); got != want {
				t.Errorf("%d user pending lists asked; want %d", got, want)
			}
			if got, want := kind("account_pending"), c.wantAcctsLists(txAccts); got != want {
				t.Errorf("%d account pending lists asked; want %d", got, want)
			}
			if got := kind("accounts"); got != users {
				t.Errorf("%d GET /accounts for %d users; want one each", got, users)
			}
			if c.dryRun {
				return
			}
			rows := pendingRows(t, h.b)
			for _, u := range h.srv.Users() {
				for _, id := range h.srv.AccountIDs(u.ID) {
					info, _ := h.srv.Account(id)
					if !info.HasTransactions {
						continue
					}
					if got, want := rows[id], len(h.srv.Pending(id)); got != want {
						t.Errorf("account %s: %d pending rows, Akahu has %d", id, got, want)
					}
				}
			}
			if len(m.Failures) > 0 {
				t.Errorf("failures: %v", m.Failures)
			}
			if c.noPending && len(rows) != 0 {
				t.Errorf("pending rows %v; the fake serves none", rows)
			}
			h.expectFaithful(h.opts.From, h.opts.To)
		})
	}
}
