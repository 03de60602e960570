package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// This file holds the extraction stage: the bounded pool that extracts the planned
// windows, one window's extraction and validation, and the pending transactions.

// windowResult is what one walk extracted for one partition: the rows of its
// windows in that partition, in memory (rows) or in the spill (seg).
type windowResult struct {
	ws   []*window
	rows []rowRange
	seg  *segment
	size int64 // memory the rows hold (their share of the walk's records)
	held int64 // bytes of rows counted against the spill budget
	err  error
	// gathered: rows is all of one record gathered from ranges (compactTogether); it
	// is not gathered again, only spilled.
	gathered bool
}

// release releases the references the result's rows hold.
func (res windowResult) release() { releaseRanges(res.rows) }

// rowRange is rows lo to hi-1 of one of a walk's records. It holds one reference to
// rec, which whoever consumes the range (gather, the merge) releases: a walk's rows
// wait for their partitions as ranges of the walk's records, not as record slices,
// which would cost a few dozen arrays per contiguous run of rows.
type rowRange struct {
	rec    arrow.Record
	lo, hi int32
}

// whole reports whether the range is all of its record's rows.
func (g rowRange) whole() bool { return g.lo == 0 && int64(g.hi) == g.rec.NumRows() }

// releaseRanges releases the reference each range holds.
func releaseRanges(rs []rowRange) {
	for _, g := range rs {
		g.rec.Release()
	}
}

// rangeOverhead is what a range costs beyond its share of its record's buffers.
const rangeOverhead = 64

// partState collects the windows of one partition until all are in.
type partState struct {
	key       partKey
	remaining int
	results   []windowResult
	ranges    int // ranges of the results waiting in memory, not yet gathered
}

// compactRanges is how many ranges a partition's rows may wait in before they are
// gathered into one record (compactTogether), so the walks' records they keep go.
const compactRanges = 64

// takeWaiting removes the results whose rows wait in memory and returns them, but
// for gathering (spill false) not those gathered already, so that no row is copied
// twice; their windows are owed again until they come back (as one result). The
// caller holds the lock over the partitions.
func (ps *partState) takeWaiting(spill bool) []windowResult {
	batch := []windowResult{}
	kept := ps.results[:0]
	for _, h := range ps.results {
		if h.err == nil && h.seg == nil && len(h.rows) > 0 && (spill || !h.gathered) {
			batch = append(batch, h)
			ps.remaining += len(h.ws)
		} else {
			kept = append(kept, h)
		}
	}
	ps.results = kept
	ps.ranges = 0
	return batch
}

// extractAll walks every planned window and pending list. The windows are made user
// by user as the walks go (userBatches), not all at once.
func (r *runner) extractAll(ctx context.Context) error {
	return r.extract(ctx, r.plannedParts(), r.userBatches(), true)
}

// extractWindows walks extra windows (no pending lists): re-reads of single
// accounts.
func (r *runner) extractWindows(ctx context.Context, windows []*window) error {
	counts := map[partKey]int{}
	for _, w := range windows {
		counts[w.part]++
	}
	return r.extract(ctx, counts, func(yield func([]*window) bool) { yield(windows) }, false)
}

// extract walks windows through a bounded pool and merges each partition as soon as
// its last window is in. counts are the windows of each partition, all of them:
// batches yields them, each batch grouped into walks (see walks.go) as the pool takes
// them, so only the batches being walked and the windows of partitions not yet
// complete are in memory. A walk hands each partition its rows when it ends, and rows
// waiting for the other accounts of their partition stay in memory up to the spill
// budget, on local disk beyond it. The main pass (all) may walk a user's accounts
// together and fetches the pending lists.
func (r *runner) extract(ctx context.Context, counts map[partKey]int, batches iter.Seq[[]*window], all bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := map[partKey]*partState{}
	total := 0
	for key, n := range counts {
		parts[key] = &partState{key: key, remaining: n}
		total += n
	}
	// Complete partitions wait for a merger in a short queue: when merging falls
	// behind, the walk that completes a partition waits too, so extraction cannot
	// pile up complete partitions in memory (backpressure).
	ready := make(chan *partState, 2*DefaultMergers)
	var mu sync.Mutex
	var done atomic.Int64

	// A merged partition's write goes to the uploads, so that the mergers go on
	// merging while the bucket answers. The first failed write ends the extraction as
	// a failed merge does.
	up := newUploads(ctx, cancel)
	upload := up.add

	// Merging and encoding is about half the CPU of a run: two consumers, so it keeps
	// up with extraction.
	merge := pool.New().WithErrors().WithContext(ctx).WithCancelOnError()
	for range DefaultMergers {
		merge.Go(func(ctx context.Context) error {
			for ps := range ready {
				err := r.mergeAndWrite(ctx, ps, upload)
				ps.results = nil // the partition is done: its windows and results go
				if err != nil {
					cancel()
					for range ready { // drain so producers never block
					}
					return err
				}
			}
			return nil
		})
	}

	extract := pool.New().WithContext(ctx).WithMaxGoroutines(r.cfg.Workers)
	if all {
		// Pending transactions ride the same pool: one request per user where all
		// its accounts are extracted, one per account otherwise.
		users, single := r.pendingPlan(!r.cfg.AccountWalks)
		for _, g := range users {
			extract.Go(func(ctx context.Context) error {
				r.extractUserPending(ctx, g)
				return nil
			})
		}
		for _, a := range single {
			extract.Go(func(ctx context.Context) error {
				r.extractPending(ctx, a)
				return nil
			})
		}
	}
	// A walk found dense on its first page is split into sub-walks (splitDense): it
	// goes on as the newest, the others go to the pool from a goroutine of their own
	// (a task waiting for a slot of its own pool could wait forever) as soon as the
	// split is made. outstanding counts walks submitted and not finished; a parent
	// adds its children before it finishes, so it reaches zero only when every walk
	// is done.
	var outstanding sync.WaitGroup
	var task func(wk *walk) func(ctx context.Context) error
	spawn := func(subs []*walk) {
		outstanding.Add(len(subs))
		go func() {
			for _, sub := range subs {
				extract.Go(task(sub))
			}
		}()
	}
	task = func(wk *walk) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			defer outstanding.Done()
			results := r.extractWalk(ctx, wk, spawn)
			if r.cfg.Progress != nil {
				r.cfg.Progress(int(done.Add(int64(len(wk.windows)))), total)
			}
			for _, res := range results {
				mu.Lock()
				ps := parts[res.ws[0].part]
				waits := ps.remaining > len(res.ws) // other walks still owe this partition rows
				mu.Unlock()
				if waits && res.err == nil {
					if r.spill.reserve(res.size) {
						res.held = res.size // waits in memory
						// Many small ranges (a quiet user's walk leaves a row or two a
						// month) keep many walks' records: past compactRanges, the
						// partition's waiting rows become one record.
						var batch []windowResult
						mu.Lock()
						if ps.ranges+len(res.rows) >= compactRanges {
							batch = ps.takeWaiting(false)
						}
						mu.Unlock()
						if batch != nil {
							res = r.compactTogether(append(batch, res))
						}
					} else {
						// Over the budget: the partition's rows waiting in memory go to
						// the spill with these, as one record: one IPC stream per
						// spill, not one per walk and partition.
						mu.Lock()
						batch := ps.takeWaiting(true)
						mu.Unlock()
						res = r.spillTogether(append(batch, res))
					}
				}
				// The walk that brings the count to zero hands the partition on, after
				// every result is in.
				mu.Lock()
				ps.results = append(ps.results, res)
				if res.err == nil && res.seg == nil && !res.gathered {
					ps.ranges += len(res.rows)
				}
				ps.remaining -= len(res.ws)
				last := ps.remaining == 0
				mu.Unlock()
				if last {
					ready <- ps
				}
			}
			return nil
		}
	}
	perUser := all && !r.cfg.AccountWalks
	for batch := range batches {
		if ctx.Err() != nil {
			break
		}
		for _, wk := range r.planWalks(batch, perUser) {
			if ctx.Err() != nil {
				break
			}
			outstanding.Add(1)
			extract.Go(task(wk))
		}
	}
	outstanding.Wait()
	_ = extract.Wait()
	close(ready)
	mergeErr := merge.Wait()
	uploadErr := up.wait()
	// A stopped extraction leaves rows that never reached a merger: the partitions
	// still owed windows, and those drained from the queue. Their records are
	// Config.Memory's, which need not be memory the collector reclaims.
	for _, ps := range parts {
		for _, res := range ps.results {
			res.release()
		}
		ps.results = nil
	}
	// Whichever failed first cancelled the other: its error is the one that says why.
	switch {
	case mergeErr != nil && !errors.Is(mergeErr, context.Canceled):
		return mergeErr
	case uploadErr != nil:
		return uploadErr
	case mergeErr != nil:
		return mergeErr
	}
	return ctx.Err()
}

// spillTogether writes the rows of results (all of one partition, none failed)
// to the spill as one record and returns one result for all their windows; on an
// error the result carries it and the windows' accounts fail (their old rows stay).
func (r *runner) spillTogether(results []windowResult) windowResult {
	return r.together(results, false)
}

// compactTogether gathers the rows of results (all of one partition, none failed,
// waiting in memory) into one record with buffers of its own, which waits in memory
// if the budget allows and in the spill otherwise; it returns one result for all
// their windows. The ranges' references to the walks' records are released.
func (r *runner) compactTogether(results []windowResult) windowResult {
	return r.together(results, true)
}

// together gathers results into one record and keeps it in memory (keep, if the
// budget allows) or in the spill.
func (r *runner) together(results []windowResult, keep bool) windowResult {
	out := windowResult{}
	var rows []rowRange
	var held int64
	for _, res := range results {
		out.ws = append(out.ws, res.ws...)
		rows = append(rows, res.rows...)
		held += res.held
	}
	one, err := gather(r.mem, r.txSch, rows)
	releaseRanges(rows)
	r.spill.free(held)
	if err == nil && keep {
		if size := recordSize(one); r.spill.reserve(size) {
			out.rows, out.size, out.held, out.gathered = []rowRange{{one, 0, int32(one.NumRows())}}, size, size, true
			return out
		}
	}
	if err == nil {
		out.seg, err = r.spill.write([]arrow.Record{one})
		one.Release()
	}
	if err != nil {
		out.err = err
		r.failWindows(out.ws, err)
	}
	return out
}

// gather copies the rows of the ranges rs, in order, into one record with buffers of
// its own; the ranges keep their references. For the many small runs of a quiet
// fleet's walks it is about three times as fast as concatenating slices of them array
// by array (concatReleasing), with half the allocations.
func gather(mem memory.Allocator, sch *arrow.Schema, rs []rowRange) (arrow.Record, error) {
	t := &table{schema: sch, recs: make([]arrow.Record, len(rs))}
	n := 0
	for _, g := range rs {
		n += int(g.hi - g.lo)
	}
	rows := make([]rowRef, 0, n)
	for s, g := range rs {
		t.recs[s] = g.rec
		for i := g.lo; i < g.hi; i++ {
			rows = append(rows, rowRef{int32(s), i})
		}
	}
	one, err := take(mem, sch, t, rows)
	if err != nil {
		return nil, fmt.Errorf("gather rows: %w", err)
	}
	return one, nil
}

// concatReleasing returns recs as one record with buffers of its own and releases
// recs, a column at a time: each column's parts are let go once their copy is made,
// so the copy costs the rows once plus one column, not twice (a dense month's fresh
// rows are megabytes). If it fails,
// recs[k] are records with the same rows again (rebuilt from the columns copied so
// far and those not yet), still the caller's.
func concatReleasing(mem memory.Allocator, sch *arrow.Schema, recs []arrow.Record) (arrow.Record, error) {
	parts := make([][]arrow.Array, sch.NumFields()) // parts[i][k]: recs[k]'s column i
	lens := make([]int64, len(recs))
	schemas := make([]*arrow.Schema, len(recs))
	var rows int64
	for k, rec := range recs {
		lens[k], schemas[k] = rec.NumRows(), rec.Schema()
		rows += lens[k]
	}
	for i := range parts {
		parts[i] = make([]arrow.Array, len(recs))
		for k, rec := range recs {
			parts[i][k] = rec.Column(i)
			parts[i][k].Retain()
		}
	}
	for _, rec := range recs {
		rec.Release()
	}
	cols := make([]arrow.Array, len(parts))
	for i := range parts {
		a, err := array.Concatenate(parts[i], mem)
		if err != nil {
			restoreRecords(recs, schemas, lens, cols[:i], parts[i:])
			return nil, fmt.Errorf("concatenate column %s: %w", sch.Field(i).Name, err)
		}
		for _, p := range parts[i] {
			p.Release()
		}
		cols[i] = a
	}
	out := array.NewRecord(sch, cols, rows)
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}

// restoreRecords rebuilds recs (of schemas and lens rows each) after
// concatReleasing failed: their first columns from slices of done (concatenated),
// the others from rest (rest[j][k]: recs[k]'s column len(done)+j). It takes the
// references of done and rest.
func restoreRecords(recs []arrow.Record, schemas []*arrow.Schema, lens []int64, done []arrow.Array, rest [][]arrow.Array) {
	var off int64
	for k := range recs {
		cols := make([]arrow.Array, 0, len(done)+len(rest))
		for _, c := range done {
			cols = append(cols, array.NewSlice(c, off, off+lens[k]))
		}
		for _, p := range rest {
			cols = append(cols, p[k])
		}
		recs[k] = array.NewRecord(schemas[k], cols, lens[k])
		for _, c := range cols {
			c.Release()
		}
		off += lens[k]
	}
	for _, c := range done {
		c.Release()
	}
}

// failWindows fails the accounts of windows whose rows could not be kept.
func (r *runner) failWindows(ws []*window, err error) {
	for _, w := range ws {
		w.acct.fail(fmt.Errorf("account %s, window %s..%s: %w", w.acct.acct.ID, w.span.from, w.span.to, err))
	}
}

// extractWalk walks one cursor walk, normalises its pages into Arrow records and
// splits them by partition: one result per partition its windows fall in, also
// when the walk failed (with the error) or returned no rows for a partition (an
// empty, successful result: the partition's rows of those windows are replaced by
// none). A walk split as dense hands its older sub-walks to spawn and keeps the
// newest (then its windows are those of the newest).
func (r *runner) extractWalk(ctx context.Context, wk *walk, spawn func([]*walk)) []windowResult {
	fail := func(err error) []windowResult {
		if refusal(err) {
			wk.user.refuse(fmt.Errorf("user %d (%s): %w", wk.user.index+1, wk.user.me.ID, err))
		}
		for _, a := range wk.accounts() {
			a.fail(err)
		}
		if !errors.Is(err, errSkipped) {
			r.log.Error("walk failed", "user", wk.user.me.ID, "err", err)
		}
		return r.splitResults(wk, err)
	}
	if wk.user.isRefused() {
		return fail(errSkipped)
	}
	for _, a := range wk.accounts() {
		if a.failed() {
			return fail(errSkipped)
		}
	}
	// firstPage looks at a walk's first page: a full page whose oldest row is still
	// near the walk's end means many pages, walked one after another. The walk is
	// split into sub-walks over runs of months the pool walks at once, so the latency
	// of a dense account stays hidden: it goes on with its cursor as the newest (its
	// pages so far are that one's) and spawns the others.
	firstPage := func(p akahu.Page) {
		if p.Index != 0 || wk.sub || spawn == nil || len(p.Items) < denseMinPage || wk.span.from.month() == wk.span.to.month() {
			return
		}
		if subs := r.splitDense(wk, p.Items); len(subs) > 1 {
			r.log.Debug("dense walk split", "user", wk.user.me.ID, "from", wk.span.from.String(), "to", wk.span.to.String(), "walks", len(subs))
			wk.keepNewest(subs[len(subs)-1])
			spawn(subs[:len(subs)-1])
		}
	}
	// pageDone ends a walk that went on as its newest sub-walk once a page's oldest
	// row is older than its windows: the rest is the other sub-walks'.
	pageDone := func(p akahu.Page) error {
		if !wk.cut() || len(p.Items) == 0 {
			return nil
		}
		var last struct {
			Date time.Time `json:"date"`
		}
		if json.Unmarshal(p.Items[len(p.Items)-1], &last) == nil && !last.Date.IsZero() && dayOfTime(last.Date, r.loc) < wk.span.from {
			return errWalkCut
		}
		return nil
	}
	b := r.txBuilder()
	defer r.putTxBuilder(b)
	var recs []arrow.Record
	release := func() {
		if b.Len() > 0 {
			b.NewRecord().Release() // drop the partial walk; the builder goes back clean
		}
		for _, rec := range recs {
			rec.Release()
		}
	}
	asked := wk.request()
	aw := akahu.LocalDates(asked.from.civil(), asked.to.civil(), r.loc)
	var err error
	if wk.acct != nil {
		currency := wk.acct.acct.Currency
		err = r.cfg.Source.Transactions(ctx, wk.user.token, wk.acct.acct.ID, aw, func(p akahu.Page) error {
			firstPage(p)
			for i, item := range p.Items {
				if err := b.Append(item, currency); err != nil {
					return fmt.Errorf("%w: page %d item %d: %w", ErrBadResponse, p.Index, i, err)
				}
			}
			if b.Len() >= DefaultBatchRows {
				recs = append(recs, b.NewRecord())
			}
			return pageDone(p)
		})
	} else {
		currencies := map[string]string{}
		for _, a := range wk.accounts() {
			currencies[a.acct.ID] = a.acct.Currency
		}
		var stranger string
		of := func(id string) (string, bool) {
			c, ok := currencies[id]
			if !ok {
				stranger = id
			}
			return c, ok
		}
		err = r.cfg.Source.AllTransactions(ctx, wk.user.token, aw, func(p akahu.Page) error {
			firstPage(p)
			for i, item := range p.Items {
				ok, err := b.AppendOf(item, of)
				if err != nil {
					return fmt.Errorf("%w: page %d item %d: %w", ErrBadResponse, p.Index, i, err)
				}
				if !ok {
					// An account the user did not list (connected since, or a bad
					// answer): the walk is done again account by account.
					return fmt.Errorf("%w: page %d item %d belongs to account %s, not one the user listed", ErrBadResponse, p.Index, i, stranger)
				}
			}
			if b.Len() >= DefaultBatchRows {
				recs = append(recs, b.NewRecord())
			}
			return pageDone(p)
		})
	}
	if errors.Is(err, errWalkCut) {
		err = nil
	}
	if err == nil && b.Len() > 0 {
		recs = append(recs, b.NewRecord())
	}
	var results []windowResult
	if err == nil {
		results, err = r.splitWalk(wk, recs)
	}
	if err != nil {
		release()
		if wk.acct == nil && !refusal(err) && ctx.Err() == nil {
			// One account's bad answer must not fail its user's other accounts: the
			// walk is done again account by account.
			r.log.Warn("walk over all of a user's accounts failed; walking them one by one", "user", wk.user.me.ID, "err", err)
			return r.extractEach(ctx, wk)
		}
		what := "user " + orUnknown(wk.user.me.ID) + ", all accounts"
		if wk.acct != nil {
			what = "account " + wk.acct.acct.ID
		}
		return fail(fmt.Errorf("%s, window %s..%s: %w", what, wk.span.from, wk.span.to, err))
	}
	for _, rec := range recs {
		rec.Release() // the results' ranges hold references of their own
	}
	perAcct := map[*acctRun]int64{}
	for _, res := range results {
		for _, g := range res.rows {
			for i := g.lo; i < g.hi; i++ {
				perAcct[accountOfRow(g.rec, r.cols.account, int(i), res.ws)]++
			}
		}
	}
	for _, a := range wk.accounts() {
		a.mu.Lock()
		a.rows += perAcct[a]
		for _, w := range wk.byAcct[a.acct.ID] {
			a.done = append(a.done, w.span)
		}
		a.done = joinSpans(a.done) // kept joined: one span per run of months
		a.mu.Unlock()
	}
	r.log.Debug("walk extracted", "user", wk.user.me.ID, "from", wk.span.from.String(), "to", wk.span.to.String(), "windows", len(wk.windows))
	return results
}

// errWalkCut ends a walk that has read all the rows of its windows (walk.cut).
var errWalkCut = errors.New("walk read past its windows")

// extractEach walks the accounts of a user walk one by one and gathers their results
// by partition.
func (r *runner) extractEach(ctx context.Context, wk *walk) []windowResult {
	var out []windowResult
	index := map[partKey]int{}
	for _, a := range wk.accounts() {
		run := wk.byAcct[a.acct.ID]
		sub := &walk{user: wk.user, acct: a, windows: run, byAcct: map[string][]*window{a.acct.ID: run},
			span: span{run[0].span.from, run[len(run)-1].span.to}, bucket: a.bucket, sub: true}
		results := r.extractWalk(ctx, sub, nil)
		for _, res := range results {
			key := res.ws[0].part
			i, ok := index[key]
			if !ok {
				index[key] = len(out)
				out = append(out, res)
				continue
			}
			// Results of one partition combine: the failed accounts' windows keep their
			// error on the accounts (acctRun.fail), and the merge skips them.
			out[i].ws = append(out[i].ws, res.ws...)
			out[i].rows = append(out[i].rows, res.rows...)
			out[i].size += res.size
			if out[i].err != nil && res.err == nil {
				out[i].err = nil
			}
		}
	}
	return out
}

// accountOfRow returns the window account of row i of rec among ws.
func accountOfRow(rec arrow.Record, col, i int, ws []*window) *acctRun {
	if len(ws) == 1 {
		return ws[0].acct
	}
	id := rec.Column(col).(*array.String).Value(i)
	for _, w := range ws {
		if w.acct.acct.ID == id {
			return w.acct
		}
	}
	return nil
}

// splitWalk checks what the client cannot (every row belongs to the token's user
// and an account of the walk, and is dated inside the walk) and cuts the records
// into one result per partition. Rows arrive newest first, so each partition's rows are a few
// contiguous runs: ranges of the walk's records, each holding a reference to its
// record (copies, or record slices, would cost a few dozen arrays per month of a
// quiet account). On an error no range is left holding a reference.
func (r *runner) splitWalk(wk *walk, recs []arrow.Record) (_ []windowResult, err error) {
	results := r.splitResults(wk, nil)
	defer func() {
		if err != nil {
			for _, res := range results {
				res.release()
			}
		}
	}()
	index := map[partKey]int{}
	for i, res := range results {
		index[res.ws[0].part] = i
	}
	t := &table{schema: r.txSch, recs: recs}
	for s, rec := range recs {
		n := int(rec.NumRows())
		size := recordSize(rec)
		start := 0
		var cur partKey
		curSkip := false
		for i := 0; i <= n; i++ {
			var key partKey
			skip := false // a row of another sub-walk's windows (walk.cut)
			if i < n {
				ref := rowRef{int32(s), int32(i)}
				if u := t.str(ref, r.cols.user); u != wk.user.me.ID && wk.user.me.ID != "" {
					// Layout 2 files the rows by the token's user: a row of another
					// user would land where a purge of that user never looks.
					return nil, fmt.Errorf("%w: transaction %s belongs to user %s, not the token's user %s", ErrBadResponse, t.str(ref, r.cols.id), u, wk.user.me.ID)
				}
				acc := t.str(ref, r.cols.account)
				d := day(t.i64(ref, r.cols.dateLocal))
				w := wk.windowFor(acc, d)
				switch {
				case w != nil:
					key = w.part
				case wk.byAcct[acc] == nil:
					return nil, fmt.Errorf("%w: transaction %s belongs to account %s, not one the walk reads", ErrBadResponse, t.str(ref, r.cols.id), acc)
				case wk.cut() && wk.asked.contains(d):
					skip = true
				default:
					asked := wk.request()
					return nil, fmt.Errorf("%w: transaction %s dated %s is outside the window %s..%s", ErrBadResponse, t.str(ref, r.cols.id), d, asked.from, asked.to)
				}
			}
			if i > 0 && (i == n || key != cur || skip != curSkip) {
				if !curSkip {
					k := index[cur]
					rec.Retain()
					results[k].rows = append(results[k].rows, rowRange{rec, int32(start), int32(i)})
					// Ranges share their record's buffers: each counts its share.
					results[k].size += size*int64(i-start)/int64(n) + rangeOverhead
				}
				start = i
			}
			cur, curSkip = key, skip
		}
	}
	return results, nil
}

// splitResults returns one result per partition of the walk's windows, with err
// and no records yet.
func (r *runner) splitResults(wk *walk, err error) []windowResult {
	var out []windowResult
	index := map[partKey]int{}
	for _, w := range wk.windows {
		i, ok := index[w.part]
		if !ok {
			i = len(out)
			index[w.part] = i
			out = append(out, windowResult{err: err})
		}
		out[i].ws = append(out[i].ws, w)
	}
	return out
}

var errSkipped = errors.New("skipped after an earlier failure of the same account or user")

// extractPending fetches one account's pending transactions.
func (r *runner) extractPending(ctx context.Context, a *acctRun) {
	if a.user.isRefused() {
		return
	}
	items, err := r.cfg.Source.Pending(ctx, a.user.token, a.acct.ID)
	if err != nil {
		r.pendingFailed(a, err)
		return
	}
	r.keepPending(a, items)
}

// keepPending replaces the account's pending rows by items: an empty list is an
// answer too, and replaces them by none. The items are checked first (decoded, not
// appended: no builder's buffers or record), so a bad one leaves nothing of the
// account in its bucket's rows.
func (r *runner) keepPending(a *acctRun, items []json.RawMessage) {
	check, _ := r.pend.check.Get().(*schema.PendingBuilder)
	if check == nil {
		// It only checks: its columns never get a row, so never a buffer.
		check = schema.NewPendingBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
	}
	defer r.pend.check.Put(check)
	for i, it := range items {
		if err := check.Check(it, a.acct.Currency); err != nil {
			r.pendingFailed(a, fmt.Errorf("%w: pending item %d: %w", ErrBadResponse, i, err))
			return
		}
	}
	r.pend.mu.Lock()
	h := r.pend.rows[a.bucket]
	if h == nil {
		h = &heldRows{}
		r.pend.rows[a.bucket] = h
	}
	b := h.builder(r.newPendingBuilder).(*schema.PendingBuilder)
	for _, it := range items {
		_ = b.Append(it, a.acct.Currency) // checked above
		r.pend.bytes += len(it)
	}
	r.pend.fetched[a.bucket] = append(r.pend.fetched[a.bucket], a.acct.ID)
	if r.pend.n += len(items); r.pend.n >= heldSpillRows || r.pend.bytes >= heldSpillBytes {
		r.spillHeld("pending", r.pend.rows, schema.Pending())
		r.pend.n, r.pend.bytes = 0, 0
	}
	r.pend.mu.Unlock()
	a.setPending("fetched")
}

// pendingFailed keeps the account's previous pending rows and fails the account.
func (r *runner) pendingFailed(a *acctRun, err error) {
	if refusal(err) {
		a.user.refuse(fmt.Errorf("user %d (%s): %w", a.user.index+1, a.user.me.ID, err))
	}
	a.setPending("kept (request failed)")
	a.fail(fmt.Errorf("account %s, pending transactions (the previous pending rows are kept): %w", a.acct.ID, err))
}

// extractUserPending fetches the pending transactions of all of a user's accounts in
// one request and hands each account its items (none is an answer too).
func (r *runner) extractUserPending(ctx context.Context, accts []*acctRun) {
	u := accts[0].user
	if u.isRefused() {
		return
	}
	items, err := r.cfg.Source.AllPending(ctx, u.token)
	if err != nil && !refusal(err) && ctx.Err() == nil {
		r.log.Warn("pending list of all of a user's accounts failed; asking account by account", "user", u.me.ID, "err", err)
		for _, a := range accts {
			r.extractPending(ctx, a)
		}
		return
	}
	r.handPending(accts, items, err)
}

// handPending hands each of a user's accounts its items of the user's whole pending
// list (none is an answer too), or fails them all with err or a malformed list.
func (r *runner) handPending(accts []*acctRun, items []json.RawMessage, err error) {
	byAcct := map[string][]json.RawMessage{}
	if err == nil {
		var s jsonscan.Scanner
		for i, it := range items {
			acct, _, ok := akahu.PendingOwner(&s, it)
			if !ok || acct == "" {
				err = fmt.Errorf("%w: pending item %d has no _account", ErrBadResponse, i)
				break
			}
			byAcct[acct] = append(byAcct[acct], it)
		}
	}
	for _, a := range accts {
		if err != nil {
			r.pendingFailed(a, err)
			continue
		}
		r.keepPending(a, byAcct[a.acct.ID])
	}
}

// txBuilder returns an idle transactions builder, or a new one; each keeps its
// buffers between windows. putTxBuilder makes it idle again.
func (r *runner) txBuilder() *schema.TransactionBuilder {
	r.buildersMu.Lock()
	defer r.buildersMu.Unlock()
	if n := len(r.builders); n > 0 {
		b := r.builders[n-1]
		r.builders = r.builders[:n-1]
		return b
	}
	return schema.NewTransactionBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
}

func (r *runner) putTxBuilder(b *schema.TransactionBuilder) {
	r.buildersMu.Lock()
	defer r.buildersMu.Unlock()
	r.builders = append(r.builders, b)
}

// releaseTxBuilders frees the idle builders' buffers at the end of the run: they
// are Config.Memory's, which need not be Go memory that the collector reclaims.
func (r *runner) releaseTxBuilders() {
	r.buildersMu.Lock()
	defer r.buildersMu.Unlock()
	for _, b := range r.builders {
		b.Release()
	}
	r.builders = nil
}
