package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// denseUser is one user over two years (as a fleet backfill reads it) whose first
// account has ~150 settled transactions a month, with accounts more: the others
// quiet (~1 a month), walked together with it (GET /transactions).
func denseUser(accounts int) akahutest.Options {
	return akahutest.Options{Seed: 11, Users: 1, AccountsPerUser: accounts, TxPerAccountPerMonth: 1,
		DenseEvery: accounts, DenseTxPerAccountPerMonth: 150,
		From: date(2024, 11, 21), To: date(2026, 11, 20), PageSize: 100}
}

// walkRequests is the settled-transaction requests the fake answered.
func walkRequests(s akahutest.Stats) int64 {
	return s.ByKind["transactions"] + s.ByKind["account_transactions"]
}

// TestDenseBackfillRequests: a dense backfill (two years, ~37 pages of 100) costs its
// pages of data and little more: the sub-walks' partly filled last pages (half a
// page each on average), no first page thrown away, sub-walks short enough to meet
// none of the fake's empty pages (every seventh page of a walk). Before: 43 and 42
// requests, one page thrown away and five sub-walks of 7 to 8 pages.
func TestDenseBackfillRequests(t *testing.T) {
	cases := []struct {
		name     string
		accounts int // the dense account's user's accounts with transactions
	}{
		{"one dense account", 1},
		{"a user's dense and quiet accounts walked together", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := denseUser(c.accounts)
			h := newHarness(t, newLocal(t), opts)
			src := &countingSource{Source: h.client}
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Source, cfg.Workers = src, 8
			st0 := h.srv.Stats()
			if _, err := pipeline.Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			h.expectFaithful(h.opts.From, h.opts.To)
			w := akahu.LocalDates(h.opts.From, h.opts.To, auckland)
			n := len(h.srv.SettledUser(h.srv.Users()[0].ID, w.Start, w.End))
			minimum := int64((n + 99) / 100)
			requests := walkRequests(h.srv.Stats()) - walkRequests(st0)
			walks := src.walks.Load()
			if walks < 4 || requests > minimum+5 {
				t.Errorf("%d transactions: %d requests in %d walks, want at least 4 walks (split) and at most ⌈n/100⌉ + 5 = %d requests", n, requests, walks, minimum+5)
			}
			t.Logf("%d transactions: %d requests, %d walks, minimum %d", n, requests, walks, minimum)
		})
	}
}

// awkwardSource repeats the last item of a walk's previous page at the top of each
// next page (an item seen twice, as when the data moves under an offset cursor).
type awkwardSource struct {
	pipeline.Source
}

func (a awkwardSource) dup(fn func(akahu.Page) error) func(akahu.Page) error {
	var mu sync.Mutex
	var last json.RawMessage
	return func(p akahu.Page) error {
		mu.Lock()
		items := p.Items
		if last != nil && len(items) > 0 {
			items = append([]json.RawMessage{last}, items...)
		}
		if len(p.Items) > 0 {
			last = append(json.RawMessage(nil), p.Items[len(p.Items)-1]...)
		}
		mu.Unlock()
		return fn(akahu.Page{Index: p.Index, Items: items})
	}
}

func (a awkwardSource) Transactions(ctx context.Context, u akahu.Token, acct string, w akahu.Window, fn func(akahu.Page) error) error {
	return a.Source.Transactions(ctx, u, acct, w, a.dup(fn))
}

func (a awkwardSource) AllTransactions(ctx context.Context, u akahu.Token, w akahu.Window, fn func(akahu.Page) error) error {
	return a.Source.AllTransactions(ctx, u, w, a.dup(fn))
}

// TestDenseWalkCompleteMonths: a dense backfill split into sub-walks gives every month
// partition its account's complete rows, whatever the pages look like: empty pages
// with a cursor (every third), an item served twice across pages, rows on either side
// of every sub-walk's boundary, and a second backfill after transactions moved across
// those boundaries, one was added on a month's first day and one deleted.
func TestDenseWalkCompleteMonths(t *testing.T) {
	for _, accounts := range []int{1, 2} {
		t.Run(map[int]string{1: "account walk", 2: "user walk"}[accounts], func(t *testing.T) {
			opts := denseUser(accounts)
			opts.EmptyPageEvery = 3
			h := newHarness(t, newLocal(t), opts)
			src := &countingSource{Source: awkwardSource{h.client}}
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Source, cfg.Workers = src, 8
			if _, err := pipeline.Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			if src.walks.Load() < 4 {
				t.Fatalf("%d walks: the dense walk was not split", src.walks.Load())
			}
			h.expectFaithful(h.opts.From, h.opts.To)

			var dense string // the account with the most transactions
			for _, id := range h.srv.AccountIDs(h.srv.Users()[0].ID) {
				if dense == "" || h.srv.TotalSettled(id) > h.srv.TotalSettled(dense) {
					dense = id
				}
			}
			in := func(m time.Time) []akahutest.Txn {
				w := akahu.LocalDates(m, m.AddDate(0, 1, -1), auckland)
				return h.srv.Settled(dense, w.Start, w.End)
			}
			oldest, middle, newest := in(date(2024, 12, 1)), in(date(2025, 11, 1)), in(date(2026, 10, 1))
			must(t, h.srv.MoveDate(oldest[0].ID, date(2026, 10, 31))) // oldest sub-walk to the newest
			must(t, h.srv.MoveDate(newest[1].ID, date(2025, 11, 1)))  // newest to a middle one
			must(t, h.srv.MoveDate(middle[2].ID, date(2024, 11, 21))) // middle to the range's first day
			h.srv.AddTransaction(dense, date(2025, 6, 1), "-12.34", "on a month's first day")
			must(t, h.srv.DeleteTransaction(middle[3].ID))
			h.shift.Add(int64(time.Hour))
			if _, err := pipeline.Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			h.expectFaithful(h.opts.From, h.opts.To)
		})
	}
}

// TestDenseWalkFailureStaysInItsAccount: a bad item of a quiet account arriving in
// every page of a dense user's walks over all its accounts (the newest sub-walk, which
// read past its months, and the others) fails that account alone: each walk is done
// again account by account over its own months, the dense account and the other
// user commit, and the failed account keeps its rows.
func TestDenseWalkFailureStaysInItsAccount(t *testing.T) {
	opts := denseUser(2)
	opts.Users = 2
	h := newHarness(t, newLocal(t), opts)
	quiet := h.srv.AccountIDs(h.srv.Users()[0].ID)[0]
	if h.srv.TotalSettled(quiet) > 100 {
		t.Fatalf("account %s has %d transactions: want the quiet one", quiet, h.srv.TotalSettled(quiet))
	}
	tp := &tamper{next: h.srv.Fake, account: quiet}
	h.throughTamper(tp)
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	before := contentOf(t, h)

	edit := func(items []map[string]json.RawMessage) []map[string]json.RawMessage {
		items[0]["amount"] = json.RawMessage("true")
		return items
	}
	tp.edit.Store(&edit)
	src := &countingSource{Source: h.client}
	cfg := h.config(from, to)
	cfg.Source, cfg.Workers = src, 8
	m, err := pipeline.Run(context.Background(), cfg)
	if m == nil {
		t.Fatalf("nothing committed: %v", err)
	}
	if !errors.Is(err, pipeline.ErrPartial) || len(m.Failures) != 1 || !strings.Contains(m.Failures[0], quiet) {
		t.Fatalf("err %v, failures %q: want account %s alone to fail", err, m.Failures, quiet)
	}
	if src.walks.Load() < 10 {
		t.Errorf("%d walks: want the dense users' walks split", src.walks.Load())
	}
	if after := contentOf(t, h); len(after) != len(before) || m.Counts.Deleted != 0 {
		t.Errorf("rows %d → %d, %d deleted: want the failed account's rows kept", len(before), len(after), m.Counts.Deleted)
	}
	h.expectFaithful(from, to)
}
