package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds the extraction stage: the bounded pool that extracts the planned
// windows, one window's extraction and validation, and the pending transactions.

// windowResult is the outcome of one window's cursor walk.
type windowResult struct {
	w    *window
	recs []arrow.Record
	err  error
}

// partState collects the windows of one partition until all are in.
type partState struct {
	key       partKey
	remaining int
	results   []windowResult
}

// extractAll walks every planned window and pending list.
func (r *runner) extractAll(ctx context.Context) error {
	return r.extract(ctx, r.windows, true)
}

// extractWindows walks extra windows (no pending lists).
func (r *runner) extractWindows(ctx context.Context, windows []*window) error {
	return r.extract(ctx, windows, false)
}

// extract walks windows through a bounded pool and merges each partition as soon as
// its last window is in. At most Workers+2 partitions are open at once.
//
// Windows are fed partition by partition, whatever order the caller lists them in: a
// partition takes a slot and all its windows go to the pool before the next
// partition asks for one. Every partition holding a slot can therefore complete, and
// its merge frees the slot; had a partition's windows been spread over the list, the
// slots could all be held by partitions waiting for windows the feed never reached.
func (r *runner) extract(ctx context.Context, windows []*window, withPending bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := map[partKey]*partState{}
	byPart := map[partKey][]*window{}
	var order []partKey // partitions in the order of their first window
	for _, w := range windows {
		ps := parts[w.part]
		if ps == nil {
			ps = &partState{key: w.part}
			parts[w.part] = ps
			order = append(order, w.part)
		}
		ps.remaining++
		byPart[w.part] = append(byPart[w.part], w)
	}
	slots := make(chan struct{}, r.cfg.Workers+2)
	ready := make(chan *partState, len(parts))
	var mu sync.Mutex
	var done atomic.Int64

	// Merging and encoding is about half the CPU of a run: two consumers, so it keeps
	// up with extraction and few partitions wait in memory.
	merge := pool.New().WithErrors().WithContext(ctx).WithCancelOnError()
	for range DefaultMergers {
		merge.Go(func(ctx context.Context) error {
			for ps := range ready {
				err := r.mergeAndWrite(ctx, ps)
				<-slots
				if err != nil {
					cancel()
					for range ready { // drain so producers never block
						<-slots
					}
					return err
				}
			}
			return nil
		})
	}

	extract := pool.New().WithContext(ctx).WithMaxGoroutines(r.cfg.Workers)
	// Pending transactions, one request per account, ride the same pool.
	for _, a := range r.accounts {
		if a.status == "skipped" || !withPending {
			continue
		}
		extract.Go(func(ctx context.Context) error {
			r.extractPending(ctx, a)
			return nil
		})
	}
feed:
	for _, key := range order {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		for _, w := range byPart[key] {
			extract.Go(func(ctx context.Context) error {
				res := r.extractWindow(ctx, w)
				if r.cfg.Progress != nil {
					r.cfg.Progress(int(done.Add(1)), len(windows))
				}
				mu.Lock()
				ps := parts[w.part]
				ps.results = append(ps.results, res)
				ps.remaining--
				last := ps.remaining == 0
				mu.Unlock()
				if last {
					ready <- ps
				}
				return nil
			})
		}
	}
	_ = extract.Wait()
	close(ready)
	if err := merge.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// extractWindow walks one window and normalises its pages into Arrow records.
func (r *runner) extractWindow(ctx context.Context, w *window) (res windowResult) {
	res.w = w
	a := w.acct
	if a.user.isRefused() || a.failed() {
		res.err = errSkipped
		return res
	}
	b := r.txBuilder()
	defer r.builders.Put(b)
	aw := akahu.LocalDates(w.span.from.civil(), w.span.to.civil(), r.loc)
	log := r.log.With("user", a.user.me.ID, "account", a.acct.ID, "window", w.part.month.String())
	err := r.cfg.Source.Transactions(ctx, a.user.token, a.acct.ID, aw, func(p akahu.Page) error {
		for i, item := range p.Items {
			if err := b.Append(item, a.acct.Currency); err != nil {
				return fmt.Errorf("%w: page %d item %d: %w", ErrBadResponse, p.Index, i, err)
			}
		}
		if b.Len() >= DefaultBatchRows {
			res.recs = append(res.recs, b.NewRecord())
		}
		return nil
	})
	if err == nil && b.Len() > 0 {
		res.recs = append(res.recs, b.NewRecord())
	}
	if err == nil {
		err = r.validateWindow(w, res.recs)
	}
	if err != nil {
		if b.Len() > 0 {
			b.NewRecord().Release() // drop the partial window; the builder goes back clean
		}
		for _, rec := range res.recs {
			rec.Release()
		}
		res.recs = nil
		res.err = fmt.Errorf("account %s, window %s..%s: %w", a.acct.ID, w.span.from, w.span.to, err)
		if refusal(err) {
			a.user.refuse(fmt.Errorf("user %d (%s): %w", a.user.index+1, a.user.me.ID, err))
		}
		a.fail(res.err)
		log.Error("window failed", "err", res.err)
		return res
	}
	var rows int64
	for _, rec := range res.recs {
		rows += rec.NumRows()
	}
	a.mu.Lock()
	a.rows += rows
	a.done = append(a.done, w.span)
	a.mu.Unlock()
	log.Debug("window extracted", "rows", rows)
	return res
}

var errSkipped = errors.New("skipped after an earlier failure of the same account or user")

// validateWindow checks what the client cannot: every row belongs to the account and
// is dated inside the window.
func (r *runner) validateWindow(w *window, recs []arrow.Record) error {
	t := &table{schema: r.txSch, recs: recs}
	for s := range recs {
		for i := 0; i < int(recs[s].NumRows()); i++ {
			ref := rowRef{int32(s), int32(i)}
			if acc := t.str(ref, r.cols.account); acc != w.acct.acct.ID {
				return fmt.Errorf("%w: transaction %s belongs to account %s, not %s", ErrBadResponse, t.str(ref, r.cols.id), acc, w.acct.acct.ID)
			}
			if d := day(t.i64(ref, r.cols.dateLocal)); !w.span.contains(d) {
				return fmt.Errorf("%w: transaction %s dated %s is outside the window %s..%s", ErrBadResponse, t.str(ref, r.cols.id), d, w.span.from, w.span.to)
			}
		}
	}
	return nil
}

// extractPending fetches one account's pending transactions.
func (r *runner) extractPending(ctx context.Context, a *acctRun) {
	if a.user.isRefused() {
		return
	}
	items, err := r.cfg.Source.Pending(ctx, a.user.token, a.acct.ID)
	if err == nil {
		b := schema.NewPendingBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
		defer b.Release()
		for i, it := range items {
			if err = b.Append(it, a.acct.Currency); err != nil {
				err = fmt.Errorf("%w: pending item %d: %w", ErrBadResponse, i, err)
				break
			}
		}
		if err == nil {
			// An empty list is an answer too: the account's pending rows are all
			// replaced, by none if need be.
			rec := b.NewRecord()
			r.mu.Lock()
			r.pending[a.acct.ID] = rec
			r.mu.Unlock()
			a.setPending("fetched")
			return
		}
	}
	if refusal(err) {
		a.user.refuse(fmt.Errorf("user %d (%s): %w", a.user.index+1, a.user.me.ID, err))
	}
	a.setPending("kept (request failed)")
	a.fail(fmt.Errorf("account %s, pending transactions (the previous pending rows are kept): %w", a.acct.ID, err))
}

// txBuilder returns a transactions builder from the pool; each keeps its buffers
// between windows.
func (r *runner) txBuilder() *schema.TransactionBuilder {
	if b, ok := r.builders.Get().(*schema.TransactionBuilder); ok {
		return b
	}
	return schema.NewTransactionBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
}
