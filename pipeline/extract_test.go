package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// emptySource is an Akahu with no transactions at all.
type emptySource struct{}

func (emptySource) Me(context.Context, akahu.Token) (akahu.Me, error) { return akahu.Me{}, nil }
func (emptySource) Accounts(context.Context, akahu.Token) ([]akahu.Account, error) {
	return nil, nil
}
func (emptySource) Transactions(context.Context, akahu.Token, string, akahu.Window, func(akahu.Page) error) error {
	return nil
}
func (emptySource) Transaction(context.Context, akahu.Token, string) (json.RawMessage, error) {
	return nil, akahu.ErrNotFound
}
func (emptySource) Pending(context.Context, akahu.Token, string) ([]json.RawMessage, error) {
	return nil, nil
}
func (emptySource) AllTransactions(context.Context, akahu.Token, akahu.Window, func(akahu.Page) error) error {
	return nil
}
func (emptySource) AllPending(context.Context, akahu.Token) ([]json.RawMessage, error) {
	return nil, nil
}
func (emptySource) Stats() akahu.Stats { return akahu.Stats{} }

// TestExtractAnyWindowOrder: extract finishes whatever order its caller lists the
// windows in, even when the windows of each partition are spread over the list and
// there are many more partitions than open-partition slots (Workers+2). Re-reads of
// neighbouring months and by-id re-reads list windows account by account.
func TestExtractAnyWindowOrder(t *testing.T) {
	cases := []struct {
		name             string
		workers, buckets int
		accounts, months int
	}{
		{"one worker, 8 buckets, account by account", 1, 8, 24, 2},
		{"two workers, 16 buckets, account by account", 2, 16, 48, 3},
		{"eight workers, 8 buckets, account by account", 8, 8, 40, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc, _ := time.LoadLocation("Pacific/Auckland")
			r := &runner{cfg: Config{Workers: c.workers, Source: emptySource{}}, loc: loc, b: bucket.NewMemory(),
				mem: memory.DefaultAllocator, txSch: schema.Transactions(), lease: &lease{},
				log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			r.cols = newTxCols(r.txSch)
			r.spill = &spill{budget: DefaultHoldBytes, mem: r.mem, sch: r.txSch}
			u := &userRun{}
			var windows []*window
			// Account by account, each account's months in turn: every partition's
			// windows are spread over the whole list.
			for i := range c.accounts {
				a := &acctRun{user: u, acct: acctInfo{ID: fmt.Sprintf("acc_%03d", i), Currency: "NZD"}, bucket: i % c.buckets}
				r.accounts = append(r.accounts, a)
				for k := range c.months {
					m := month{2026, time.January}.add(k)
					windows = append(windows, &window{acct: a, part: partKey{m, a.bucket}, span: span{m.first(), m.last()}})
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := r.extractWindows(ctx, windows); err != nil {
				t.Fatalf("extract of %d windows over %d partitions with %d workers: %v", len(windows), c.buckets*c.months, c.workers, err)
			}
			first := month{2026, time.January}
			want := []span{{first.first(), first.add(c.months - 1).last()}}
			for _, a := range r.accounts {
				if !slices.Equal(a.done, want) {
					t.Fatalf("account %s: done %v, want its %d months %v", a.acct.ID, a.done, c.months, want)
				}
			}
		})
	}
}
