package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/sourcegraph/conc/pool"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// finish decides every deletion candidate, writes tombstones before the partitions
// that drop the rows, removes moved rows from the partitions they left, and writes the
// pending and account snapshots.
func (r *runner) finish(ctx context.Context) error {
	defer func() {
		for _, h := range r.deferred {
			h.res.t.release()
		}
	}()
	if err := r.lease.check(); err != nil {
		return err
	}
	orphans := r.orphans

	cands := r.candidates()
	// A candidate that no partition of this run received may have moved to a month
	// the run did not read: read the neighbouring months of those accounts first.
	if err := r.extractNeighbours(ctx, cands); err != nil {
		return err
	}
	// Still nowhere: ask Akahu for each one. A 404 confirms the deletion; a
	// transaction that moved further away is found with its new date, whose month is
	// then re-read; anything else keeps the row until a later run can tell. A month
	// re-read that way may have lost rows of its own (moved further still): they are
	// asked about in the next round, so no row becomes a deletion without Akahu's 404.
	keep, err := r.decideByID(ctx)
	if err != nil {
		return err
	}
	cands = r.candidates()
	for id := range keep {
		delete(cands, id)
	}

	// Presence: every partition of this shard is visited once, on disk or in memory.
	held := map[partKey]*heldPart{}
	for _, h := range r.deferred {
		held[h.key] = h
	}
	present := map[string]bool{}              // candidates found in another partition
	moveOut := map[partKey]map[string]bool{}  // ids to remove from partitions on disk
	dropHeld := map[partKey]map[string]bool{} // ids to remove from held partitions
	mark := func(m map[partKey]map[string]bool, k partKey, id string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][id] = true
	}
	var movedFresh int64 // moves whose new copy this run counted as inserted
	visit := func(key partKey, id string) {
		if c, ok := cands[id]; ok && c.h.key != key {
			present[id] = true
		}
		if _, ok := r.watch[id]; ok {
			r.watch[id] = true
		}
		if fk, ok := r.freshIDs[id]; ok && fk != key {
			if _, isCand := cands[id]; isCand {
				return // leaves its held partition below
			}
			if held[key] != nil {
				mark(dropHeld, key, id)
			} else {
				mark(moveOut, key, id)
			}
		}
	}
	// Partitions on disk are scanned only when an id may have moved in from one the
	// run did not read, or a crashed run is being recovered; otherwise every candidate
	// is settled by this run's own partitions and Akahu's answer by id.
	if r.suspicious || len(r.crashed) > 0 || len(r.watch) > 0 {
		if err := r.scanPartitions(ctx, held, visit); err != nil {
			return err
		}
	} else {
		for id, c := range cands {
			if fk, ok := r.freshIDs[id]; ok && fk != c.h.key {
				present[id] = true
			}
		}
	}
	for _, h := range r.deferred {
		for _, row := range h.res.rows {
			visit(h.key, h.res.t.str(row, r.cols.id))
		}
	}
	var deleted []cand
	for id, c := range cands {
		mark(dropHeld, c.h.key, id)
		if present[id] {
			if _, ok := r.freshIDs[id]; ok {
				movedFresh++
			}
		} else {
			deleted = append(deleted, c)
		}
	}
	sort.Slice(deleted, func(i, j int) bool {
		return deleted[i].h.res.t.str(deleted[i].row, r.cols.id) < deleted[j].h.res.t.str(deleted[j].row, r.cols.id)
	})
	// Held partitions' final rows, decided once; they count for the crashed runs'
	// tombstones too.
	type heldFinal struct {
		rows    []rowRef
		changed bool
	}
	finals := make([]heldFinal, len(r.deferred))
	for i, h := range r.deferred {
		rows, changed := h.res.final(r.cols, dropHeld[h.key])
		finals[i] = heldFinal{rows, changed}
		r.noteWatched(h.res.t, rows)
	}

	// 1. Tombstones: this run's deletions plus crashed runs' ones whose rows are gone.
	tb := &table{schema: r.txSch}
	var tombRows []rowRef
	srcOf := map[arrow.Record]int32{}
	for _, d := range deleted {
		rec := d.h.res.t.recs[d.row.src]
		src, ok := srcOf[rec]
		if !ok {
			src = tb.add(rec)
			srcOf[rec] = src
		}
		tombRows = append(tombRows, rowRef{src, d.row.row})
	}
	handled := map[string]bool{}
	for id := range cands {
		handled[id] = true
	}
	adopted := orphans.adoptable(r, handled)
	if err := r.writeTombstones(ctx, tb, tombRows, orphans, adopted); err != nil {
		return err
	}

	// 2. Held partitions without their dropped rows.
	for i, h := range r.deferred {
		if !finals[i].changed {
			r.adopt("transactions", txObject(h.key), h.prev, int64(len(finals[i].rows)))
			continue
		}
		if err := r.writeTx(ctx, h.key, h.res.t, finals[i].rows, h.prev); err != nil {
			return err
		}
	}
	// 3. Rows that moved into a re-read partition leave the one they were in.
	for _, key := range sortedParts(moveOut) {
		if err := r.removeMoved(ctx, key, moveOut[key]); err != nil {
			return err
		}
	}
	r.mu.Lock()
	nMoved := int64(len(present))
	for _, ids := range moveOut {
		nMoved += int64(len(ids))
		movedFresh += int64(len(ids))
	}
	for k, ids := range dropHeld {
		for id := range ids {
			if _, isCand := cands[id]; !isCand && held[k] != nil {
				nMoved++
				movedFresh++
			}
		}
	}
	r.m.Counts.Moved = nMoved
	r.m.Counts.Inserted -= movedFresh
	r.m.Counts.Deleted = int64(len(deleted) + len(adopted))
	r.mu.Unlock()

	// 4. Snapshots.
	if err := r.writePending(ctx); err != nil {
		return err
	}
	return r.writeAccounts(ctx)
}

// cand is a deletion candidate: a row of a held partition.
type cand struct {
	h   *heldPart
	row rowRef
}

// candidates returns the old rows of fully re-read accounts that Akahu did not return.
// Rows of accounts with a failed window are not candidates: they stay.
func (r *runner) candidates() map[string]cand {
	out := map[string]cand{}
	for _, h := range r.deferred {
		for _, c := range h.res.candidates {
			a := r.accountByID(h.res.t.str(c, r.cols.account))
			if a == nil || a.failed() {
				continue
			}
			out[h.res.t.str(c, r.cols.id)] = cand{h, c}
		}
	}
	return out
}

// maxByIDRounds bounds how many times the months found by id are re-read in one run;
// candidates still open after that keep their rows until a later run decides them.
const maxByIDRounds = 8

// decideByID asks Akahu about every candidate no partition of this run received,
// round after round, until the months those answers send the run to re-read bring no
// new candidate. It returns the candidates whose rows stay (undecided).
func (r *runner) decideByID(ctx context.Context) (map[string]bool, error) {
	keep, asked := map[string]bool{}, map[string]bool{}
	for round := 0; ; round++ {
		open := map[string]cand{}
		for id, c := range r.candidates() {
			if !asked[id] && !keep[id] {
				open[id] = c
			}
		}
		if len(open) == 0 {
			return keep, nil
		}
		if round == maxByIDRounds {
			r.log.Warn("deletions left undecided after re-reading the months transactions moved to; their rows stay until a later run",
				"rounds", round, "transactions", len(open))
			for id := range open {
				keep[id] = true
			}
			return keep, nil
		}
		undecided, reread, err := r.confirmCandidates(ctx, open)
		if err != nil {
			return nil, err
		}
		for id := range open {
			asked[id] = true
		}
		for id := range undecided {
			keep[id] = true
		}
		if !reread {
			return keep, nil // no month was re-read, so no new candidate can have appeared
		}
	}
}

// confirmCandidates looks up, by id, every candidate that no partition of this run
// received. It re-reads the month a found one moved to (reread reports whether it
// did), and returns the candidates it could not decide (their rows stay).
func (r *runner) confirmCandidates(ctx context.Context, cands map[string]cand) (undecided map[string]bool, reread bool, err error) {
	type lookup struct {
		id   string
		acct *acctRun
	}
	var todo []lookup
	for id, c := range cands {
		if _, fresh := r.freshIDs[id]; !fresh {
			todo = append(todo, lookup{id, r.accountByID(c.h.res.t.str(c.row, r.cols.account))})
		}
	}
	if len(todo) == 0 {
		return nil, false, nil
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].id < todo[j].id })
	have := map[partKey]map[*acctRun]bool{}
	for _, w := range r.windows {
		if have[w.part] == nil {
			have[w.part] = map[*acctRun]bool{}
		}
		have[w.part][w.acct] = true
	}
	var mu sync.Mutex
	keep := map[string]bool{}
	var extra []*window
	p := pool.New().WithMaxGoroutines(r.cfg.Workers)
	for _, l := range todo {
		p.Go(func() {
			raw, err := r.cfg.Source.Transaction(ctx, l.acct.user.token, l.id)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, akahu.ErrNotFound) {
				return // deleted at Akahu: confirmed
			}
			m, perr := movedMonth(raw, r.loc)
			if err != nil || perr != nil {
				keep[l.id] = true
				r.log.Warn("cannot confirm a deletion; the row stays until a later run", "transaction", l.id,
					"account", l.acct.acct.ID, "err", errors.Join(err, perr))
				return
			}
			key := partKey{m, l.acct.bucket}
			if have[key][l.acct] {
				// Its month was read: the row is there already (an earlier run, perhaps
				// a crashed one, wrote it) and the presence check below sees a move.
				return
			}
			if have[key] == nil {
				have[key] = map[*acctRun]bool{}
			}
			have[key][l.acct] = true
			extra = append(extra, &window{acct: l.acct, part: key, span: span{m.first(), m.last()}})
		})
	}
	p.Wait()
	if len(extra) > 0 {
		r.log.Info("re-reading the months that transactions moved to", "windows", len(extra))
		if err := r.extractWindows(ctx, extra); err != nil {
			return nil, false, err
		}
		r.windows = append(r.windows, extra...)
	}
	return keep, len(extra) > 0, ctx.Err()
}

// movedMonth returns the local month of a transaction's date.
func movedMonth(raw []byte, loc *time.Location) (month, error) {
	var tx struct {
		Date string `json:"date"`
	}
	if err := json.Unmarshal(raw, &tx); err != nil {
		return month{}, fmt.Errorf("%w: transaction: %v", ErrBadResponse, err)
	}
	t, err := time.Parse(time.RFC3339Nano, tx.Date)
	if err != nil {
		return month{}, fmt.Errorf("%w: transaction date %q", ErrBadResponse, tx.Date)
	}
	return dayOfTime(t, loc).month(), nil
}

// extractNeighbours re-reads, for each account with a candidate that no partition of
// this run received, the month before its first window and the month after its last
// one (if that month has begun): a transaction whose date moved just outside the run's
// range is found there and recorded as moved, not deleted.
func (r *runner) extractNeighbours(ctx context.Context, cands map[string]cand) error {
	need := map[*acctRun]bool{}
	for id, c := range cands {
		if _, fresh := r.freshIDs[id]; !fresh {
			need[r.accountByID(c.h.res.t.str(c.row, r.cols.account))] = true
		}
	}
	if len(need) == 0 {
		return nil
	}
	have := map[*acctRun]map[month]bool{}
	lo, hi := map[*acctRun]month{}, map[*acctRun]month{}
	for _, w := range r.windows {
		if !need[w.acct] {
			continue
		}
		if have[w.acct] == nil {
			have[w.acct] = map[month]bool{}
			lo[w.acct], hi[w.acct] = w.part.month, w.part.month
		}
		have[w.acct][w.part.month] = true
		if w.part.month.before(lo[w.acct]) {
			lo[w.acct] = w.part.month
		}
		if hi[w.acct].before(w.part.month) {
			hi[w.acct] = w.part.month
		}
	}
	now := dayOfTime(r.cfg.Now(), r.loc).month()
	var extra []*window
	for _, a := range r.accounts {
		if !need[a] {
			continue
		}
		for _, m := range []month{lo[a].add(-1), hi[a].next()} {
			if have[a][m] || now.before(m) {
				continue
			}
			extra = append(extra, &window{acct: a, part: partKey{m, a.bucket}, span: span{m.first(), m.last()}})
		}
	}
	if len(extra) == 0 {
		return nil
	}
	r.log.Info("re-reading neighbouring months to tell moves from deletions", "windows", len(extra))
	if err := r.extractWindows(ctx, extra); err != nil {
		return err
	}
	r.windows = append(r.windows, extra...)
	return nil
}

// accountByID finds an account of the run by binary search: selectAccounts sorts
// r.accounts by id (a linear scan here made the finish stage O(accounts²)).
func (r *runner) accountByID(id string) *acctRun {
	i, ok := slices.BinarySearchFunc(r.accounts, id, func(a *acctRun, id string) int { return strings.Compare(a.acct.ID, id) })
	if !ok {
		return nil
	}
	return r.accounts[i]
}

func sortedParts[V any](m map[partKey]V) []partKey {
	out := make([]partKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return txObject(out[i]) < txObject(out[j]) })
	return out
}

// scanPartitions lists the transactions partitions of this shard and calls visit for
// every id of every partition that is not held in memory (reading the id column only).
func (r *runner) scanPartitions(ctx context.Context, held map[partKey]*heldPart, visit func(partKey, string)) error {
	list, err := r.b.List(ctx, txPrefix)
	if err != nil {
		return fmt.Errorf("list %s in %s: %w", txPrefix, r.b, err)
	}
	for _, a := range list {
		key, ok := parseTxObject(a.Name)
		if !ok || key.bucket%r.cfg.Shards != r.cfg.Shard || held[key] != nil {
			continue
		}
		recs, _, err := r.readPartition(ctx, key, []string{"id"})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			ids := rec.Column(0).(*array.String)
			for i := 0; i < ids.Len(); i++ {
				visit(key, ids.Value(i))
			}
			rec.Release()
		}
	}
	return nil
}

// removeMoved rewrites an untouched partition without rows that moved away.
func (r *runner) removeMoved(ctx context.Context, key partKey, ids map[string]bool) error {
	old, prev, err := r.readPartition(ctx, key, nil)
	if err != nil {
		return err
	}
	t := &table{schema: r.txSch}
	defer t.release()
	var rows []rowRef
	for _, rec := range old {
		src := t.add(rec)
		for i := 0; i < int(rec.NumRows()); i++ {
			ref := rowRef{src, int32(i)}
			if !ids[t.str(ref, r.cols.id)] {
				rows = append(rows, ref)
			}
		}
	}
	r.log.Info("moved rows leave their old partition", "object", txObject(key), "rows", len(ids))
	return r.writeTx(ctx, key, t, rows, prev)
}

// orphanSet holds the tombstones written by crashed runs that never committed.
type orphanSet struct {
	t       *table
	rows    []rowRef
	objects []string
}

func (o *orphanSet) release() {
	if o != nil && o.t != nil {
		o.t.release()
	}
}

// loadOrphanTombstones reads the tombstone objects of crashed runs and watches their ids.
func (r *runner) loadOrphanTombstones(ctx context.Context) (*orphanSet, error) {
	o := &orphanSet{t: &table{schema: schema.Deletions()}}
	if len(r.crashed) == 0 {
		return o, nil
	}
	crashed := map[string]bool{}
	for _, c := range r.crashed {
		crashed[c.RunID] = true
	}
	list, err := r.b.List(ctx, deletionPrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", deletionPrefix, err)
	}
	idCol := fieldIndex(o.t.schema, "id")
	seen := map[string]bool{}
	for _, a := range list {
		run, ok := parseDeletionObject(a.Name)
		if !ok || !crashed[run] {
			continue
		}
		o.objects = append(o.objects, a.Name)
		recs, _, err := r.readObject(ctx, a.Name, nil)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			src := o.t.add(rec)
			for i := 0; i < int(rec.NumRows()); i++ {
				ref := rowRef{src, int32(i)}
				id := o.t.str(ref, idCol)
				if seen[id] {
					continue
				}
				seen[id] = true
				o.rows = append(o.rows, ref)
				r.watch[id] = false
			}
		}
	}
	return o, nil
}

// adoptable returns the crashed runs' tombstones whose rows are really gone: not seen
// in any partition and not already a deletion (or move) of this run.
func (o *orphanSet) adoptable(r *runner, handled map[string]bool) []rowRef {
	idCol := fieldIndex(o.t.schema, "id")
	var out []rowRef
	for _, row := range o.rows {
		id := o.t.str(row, idCol)
		if r.watch[id] || handled[id] {
			continue
		}
		if _, fresh := r.freshIDs[id]; fresh {
			continue
		}
		out = append(out, row)
	}
	return out
}

// writeTombstones writes this run's tombstone objects, one per month of the rows' last
// known local date.
func (r *runner) writeTombstones(ctx context.Context, t *table, rows []rowRef, orphans *orphanSet, adopted []rowRef) error {
	if len(rows) == 0 && len(adopted) == 0 {
		return nil
	}
	delSch := schema.Deletions()
	byMonth := map[month]*array.RecordBuilder{}
	builder := func(m month) *array.RecordBuilder {
		b := byMonth[m]
		if b == nil {
			b = array.NewRecordBuilder(r.mem, delSch)
			byMonth[m] = b
		}
		return b
	}
	defer func() {
		for _, b := range byMonth {
			b.Release()
		}
	}()
	nTx := len(r.txSch.Fields())
	reasonCol, runCol, atCol := fieldIndex(delSch, "deleted_reason"), fieldIndex(delSch, "deleted_by_run"), fieldIndex(delSch, "deleted_at")
	now := arrow.Timestamp(r.started.UnixMicro())
	var tombs []Tombstone
	appendRow := func(src *table, ref rowRef, reason string, at arrow.Timestamp) error {
		m := day(src.i64(ref, r.cols.dateLocal)).month()
		b := builder(m)
		for c := 0; c < nTx; c++ {
			if err := appendValue(b.Field(c), src.col(ref, c), int(ref.row)); err != nil {
				return err
			}
		}
		b.Field(reasonCol).(*array.StringBuilder).Append(reason)
		b.Field(runCol).(*array.StringBuilder).Append(r.runID)
		b.Field(atCol).(*array.TimestampBuilder).Append(at)
		tombs = append(tombs, r.tombstone(src, ref, reason, deletionObject(m, r.runID)))
		return nil
	}
	for _, ref := range rows {
		if err := appendRow(t, ref, "deleted", now); err != nil {
			return err
		}
	}
	oReason, oAt := fieldIndex(orphans.t.schema, "deleted_reason"), fieldIndex(orphans.t.schema, "deleted_at")
	for _, ref := range adopted {
		at := arrow.Timestamp(orphans.t.i64(ref, oAt))
		if err := appendRow(orphans.t, ref, orphans.t.str(ref, oReason), at); err != nil {
			return err
		}
	}
	months := make([]month, 0, len(byMonth))
	for m := range byMonth {
		months = append(months, m)
	}
	sort.Slice(months, func(i, j int) bool { return months[i].before(months[j]) })
	for _, m := range months {
		rec := byMonth[m].NewRecord()
		err := r.writeRecords(ctx, "deletions", deletionObject(m, r.runID), delSch, []arrow.Record{rec}, nil)
		rec.Release()
		if err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.m.Deleted = append(r.m.Deleted, tombs...)
	r.mu.Unlock()
	return nil
}

// tombstone summarises a row's last known values for the manifest.
func (r *runner) tombstone(t *table, ref rowRef, reason, object string) Tombstone {
	amountCol := fieldIndex(t.schema, "amount")
	descCol := fieldIndex(t.schema, "description")
	amt := t.col(ref, amountCol).(*array.Decimal128)
	dt := arrow.Timestamp(t.i64(ref, r.cols.date)).ToTime(arrow.Microsecond).UTC()
	return Tombstone{
		ID: t.str(ref, r.cols.id), UserID: t.str(ref, r.cols.user), AccountID: t.str(ref, r.cols.account),
		Date: dt.Format("2006-01-02T15:04:05.000Z"), DateLocal: day(t.i64(ref, r.cols.dateLocal)).String(),
		Amount: amt.Value(int(ref.row)).ToString(schema.Money.Scale), Description: t.str(ref, descCol),
		Reason: reason, Object: object,
	}
}

// writePending replaces the pending snapshot of each bucket: rows of the accounts this
// run fetched are replaced (an account whose list came back empty loses them all),
// others kept; an account whose pending rows did not change keeps its old rows, so an
// unchanged snapshot is not rewritten.
func (r *runner) writePending(ctx context.Context) error {
	byBucket := map[int][]string{}
	for _, id := range sortedKeys(r.pending) {
		a := r.accountByID(id)
		byBucket[a.bucket] = append(byBucket[a.bucket], id)
	}
	sch := schema.Pending()
	for _, bk := range sortedInts(byBucket) {
		n, err := r.replaceSnapshot(ctx, "pending", pendingObject(bk), sch, r.pending, byBucket[bk])
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.m.Counts.Pending += n
		r.mu.Unlock()
	}
	return nil
}

// writeAccounts writes today's account snapshot of each bucket.
func (r *runner) writeAccounts(ctx context.Context) error {
	sch := schema.Accounts()
	fresh := map[string]arrow.Record{}
	defer func() {
		for _, rec := range fresh {
			rec.Release()
		}
	}()
	byBucket := map[int][]string{}
	for _, a := range r.accounts {
		if a.user.isRefused() || a.user.err != nil {
			continue
		}
		b := schema.NewAccountBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})
		err := b.Append(a.acct.Raw, a.user.me.ID)
		if err != nil {
			b.Release()
			a.fail(fmt.Errorf("account %s: %w: %w", a.acct.ID, ErrBadResponse, err))
			continue
		}
		fresh[a.acct.ID] = b.NewRecord()
		b.Release()
		byBucket[a.bucket] = append(byBucket[a.bucket], a.acct.ID)
	}
	today := dayOfTime(r.started, r.loc)
	for _, bk := range sortedInts(byBucket) {
		n, err := r.replaceSnapshot(ctx, "accounts", accountsObject(today, bk), sch, fresh, byBucket[bk])
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.m.Counts.Accounts += n
		r.mu.Unlock()
	}
	return nil
}

func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// replaceSnapshot rewrites a snapshot object in which each account's rows are replaced
// as a whole: every account listed (fetched) gets exactly its fresh rows, none if its
// record is empty; other accounts keep theirs. Rows are compared without lineage
// columns; an account whose rows are equal keeps its old rows. Returns the rows of the
// fetched accounts.
func (r *runner) replaceSnapshot(ctx context.Context, kind, name string, sch *arrow.Schema, fresh map[string]arrow.Record, accounts []string) (int64, error) {
	old, prev, err := r.readObject(ctx, name, nil)
	if err != nil {
		return 0, err
	}
	t := &table{schema: sch}
	defer func() {
		for _, rec := range old {
			rec.Release()
		}
	}()
	for _, rec := range old {
		t.add(rec)
	}
	nOld := len(t.recs)
	acctCol := fieldIndex(sch, "account_id")
	skip := []int{fieldIndex(sch, "_run_id"), fieldIndex(sch, "_extracted_at")}
	oldBy := map[string][]rowRef{}
	var order []string
	for s := 0; s < nOld; s++ {
		for i := 0; i < int(t.recs[s].NumRows()); i++ {
			ref := rowRef{int32(s), int32(i)}
			id := t.str(ref, acctCol)
			if oldBy[id] == nil {
				order = append(order, id)
			}
			oldBy[id] = append(oldBy[id], ref)
		}
	}
	newBy := map[string][]rowRef{}
	var count int64
	for _, id := range accounts {
		rec := fresh[id]
		src := t.add(rec)
		newBy[id] = make([]rowRef, 0, rec.NumRows()) // fetched, even with no rows
		for i := 0; i < int(rec.NumRows()); i++ {
			newBy[id] = append(newBy[id], rowRef{src, int32(i)})
		}
		count += rec.NumRows()
		if oldBy[id] == nil {
			order = append(order, id)
		}
	}
	less := func(rows []rowRef) {
		sort.SliceStable(rows, func(i, j int) bool { return compareRows(t, rows[i], t, rows[j], skip) < 0 })
	}
	changed := false
	var rows []rowRef
	sort.Strings(order)
	for _, id := range order {
		nr, isNew := newBy[id]
		if !isNew {
			rows = append(rows, oldBy[id]...)
			continue
		}
		less(nr)
		or := oldBy[id]
		same := len(or) == len(nr)
		for i := 0; same && i < len(nr); i++ {
			same = compareRows(t, or[i], t, nr[i], skip) == 0
		}
		if same {
			rows = append(rows, or...)
		} else {
			changed = true
			rows = append(rows, nr...)
		}
	}
	if !changed && prev != nil {
		r.adopt(kind, name, prev, int64(len(rows)))
		return count, nil
	}
	if len(rows) == 0 && prev == nil {
		return count, nil
	}
	rec, err := take(r.mem, sch, t, rows)
	if err != nil {
		return 0, fmt.Errorf("build %s: %w", name, err)
	}
	defer rec.Release()
	return count, r.writeRecords(ctx, kind, name, sch, []arrow.Record{rec}, prev)
}

// removeTombstones deletes the tombstone objects of the given crashed runs and returns
// the runs whose tombstones are all gone.
func (r *runner) removeTombstones(ctx context.Context, runs map[string]bool) map[string]bool {
	if len(runs) == 0 {
		return nil
	}
	list, err := r.b.List(ctx, deletionPrefix)
	if err != nil {
		r.log.Warn("cleanup failed: crashed runs' markers stay for the next run", "prefix", deletionPrefix, "err", err)
		return nil
	}
	gone := map[string]bool{}
	for id := range runs {
		gone[id] = true
	}
	for _, a := range list {
		if run, ok := parseDeletionObject(a.Name); ok && runs[run] {
			r.cfg.BeforeWrite(a.Name)
			if err := r.b.Delete(ctx, a.Name, bucket.Condition{}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
				r.log.Warn("cleanup failed: the crashed run's marker stays for the next run", "object", a.Name, "run", run, "err", err)
				gone[run] = false
			}
		}
	}
	for id, ok := range gone {
		if !ok {
			delete(gone, id)
		}
	}
	return gone
}

// round2 rounds x to two decimals, for figures in the manifest.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// manifest assembles the run's manifest.
func (r *runner) manifest() *Manifest {
	m := r.m
	m.ManifestVersion = ManifestVersion
	m.Kind = "run"
	m.RunID = r.runID
	m.Shard, m.Shards = r.cfg.Shard, r.cfg.Shards
	m.StartedAt = r.started
	m.FinishedAt = r.cfg.Now().UTC()
	m.ToolVersion = r.cfg.ToolVersion
	m.SchemaVersion = schema.Version
	m.Config = EffectiveConfig{Out: r.b.String(), Start: r.cfg.Start, End: r.cfg.End,
		Lookback: fmt.Sprintf("%dd", r.cfg.Lookback), History: fmt.Sprintf("%dd", r.cfg.History),
		Accounts: r.cfg.Accounts, Workers: r.cfg.Workers, Users: len(r.cfg.Users), TimeZone: r.loc.String(),
		Buckets: r.ds.Buckets, Shard: r.cfg.Shard, Shards: r.cfg.Shards}
	m.ConfigHash = m.Config.hash()
	m.Range = DateRange{Start: r.start.String(), End: r.end.String()}
	st, s0 := r.cfg.Source.Stats(), r.apiStart
	m.API = APIStats{Requests: st.Requests - s0.Requests, Retries: st.Retries - s0.Retries,
		RateLimited: st.RateLimited - s0.RateLimited, ServerErrors: st.ServerErrors - s0.ServerErrors,
		RPSBudget: st.RateBudget, RateLimitSlowdowns: st.Slowdowns - s0.Slowdowns, RateLimitRPS: round2(st.RateLimit)}
	if d := m.FinishedAt.Sub(m.StartedAt).Seconds(); d > 0 {
		m.API.AchievedRPS = round2(float64(m.API.Requests) / d)
	}
	// A refused user (revoked or forbidden) is routine at scale: reported in Users, not a
	// failure, unless every user was refused.
	refused := map[string]int{}
	for _, u := range r.users {
		us := UserStatus{UserID: u.me.ID, Index: u.index + 1, Status: u.status, TokenFP: u.fp}
		if u.err != nil {
			us.Error = u.err.Error()
			if u.isRefused() {
				refused[u.status]++
			} else {
				m.Failures = append(m.Failures, us.Error)
			}
		}
		m.Users = append(m.Users, us)
	}
	if n := refused["revoked"] + refused["forbidden"]; n > 0 && n == len(r.users) {
		m.Failures = append(m.Failures, fmt.Sprintf("Akahu refused every user's token (%d revoked, %d forbidden): nothing was extracted",
			refused["revoked"], refused["forbidden"]))
	}
	for _, a := range r.accounts {
		as := AccountStatus{UserID: a.user.me.ID, AccountID: a.acct.ID, Name: a.acct.Name, Type: a.acct.Type,
			Status: a.status, Note: a.note, Rows: a.rows, Pending: a.pending}
		if as.Pending == "" && a.status != "skipped" {
			as.Pending = "kept (not requested)"
		}
		switch {
		case a.user.isRefused():
			as.Status = a.user.status
		case a.err != nil:
			as.Status = "failed"
		}
		if a.err != nil && !errors.Is(a.err, errSkipped) {
			as.Error = a.err.Error()
			if !a.user.isRefused() {
				m.Failures = append(m.Failures, as.Error)
			}
		}
		for _, s := range a.done {
			m.Coverage = append(m.Coverage, Coverage{UserID: a.user.me.ID, AccountID: a.acct.ID, From: s.from.String(), To: s.to.String()})
		}
		m.Accounts = append(m.Accounts, as)
	}
	sort.Slice(m.Coverage, func(i, j int) bool {
		if m.Coverage[i].AccountID != m.Coverage[j].AccountID {
			return m.Coverage[i].AccountID < m.Coverage[j].AccountID
		}
		return m.Coverage[i].From < m.Coverage[j].From
	})
	sort.Slice(m.Objects, func(i, j int) bool { return m.Objects[i].Path < m.Objects[j].Path })
	sort.Slice(m.Deleted, func(i, j int) bool { return m.Deleted[i].ID < m.Deleted[j].ID })
	// Recovered lists the crashed runs this run resolved, and those resolved earlier
	// whose clean-up is not done yet: until their markers are gone, every next run
	// must know not to adopt their tombstones again.
	for _, c := range r.crashed {
		m.Recovered = append(m.Recovered, c.RunID)
	}
	m.Recovered = append(m.Recovered, r.recovered...)
	sort.Strings(m.Recovered)
	m.CoveredThrough = map[string]string{}
	if r.latest != nil {
		for id, d := range r.latest.CoveredThrough {
			m.CoveredThrough[id] = d
		}
	}
	for _, a := range r.accounts {
		if a.status == "skipped" || a.failed() || a.user.isRefused() || len(a.done) == 0 {
			continue
		}
		if prev, ok := m.CoveredThrough[a.acct.ID]; !ok || prev < r.end.String() {
			m.CoveredThrough[a.acct.ID] = r.end.String()
		}
	}
	if m.Objects == nil {
		m.Objects = []ObjectWrite{}
	}
	if m.Deleted == nil {
		m.Deleted = []Tombstone{}
	}
	return &m
}

// commit writes the manifest; from here on the run is visible as a whole.
func (r *runner) commit(ctx context.Context, m *Manifest) error {
	if err := r.lease.check(); err != nil {
		return err
	}
	if err := commitManifest(ctx, r.b, m, r.cfg.BeforeWrite); err != nil {
		return err
	}
	r.log.Info("committed", "manifest", manifestObject(m.RunID), "objects", len(m.Objects), "inserted", m.Counts.Inserted,
		"updated", m.Counts.Updated, "deleted", m.Counts.Deleted, "moved", m.Counts.Moved)
	return nil
}

// commitManifest writes a manifest; it never replaces one. The run has committed
// exactly when the manifest is stored: a write that fails ambiguously (ErrTransient:
// its answer may have been lost after the store applied it) or finds the run's own
// manifest name taken is decided by reading the manifest back. If that fails too,
// the error wraps ErrCommitUnknown.
func commitManifest(ctx context.Context, b bucket.Bucket, m *Manifest, before func(string)) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	name := manifestObject(m.RunID)
	before(name)
	_, err = b.Put(ctx, name, data, bucket.Condition{DoesNotExist: true})
	if err == nil {
		return nil
	}
	if !errors.Is(err, bucket.ErrTransient) && !errors.Is(err, bucket.ErrConflict) {
		return fmt.Errorf("commit manifest %s: %w", name, err)
	}
	stored, _, gerr := b.Get(ctx, name)
	switch {
	case gerr == nil && bytes.Equal(stored, data):
		return nil // stored: the answer was lost
	case gerr == nil, errors.Is(gerr, bucket.ErrNotFound):
		return fmt.Errorf("commit manifest %s: %w", name, err)
	}
	return fmt.Errorf("%w: commit manifest %s: %w; reading it back failed too: %v", ErrCommitUnknown, name, err, gerr)
}

// cleanup removes this run's marker and the leftovers of the crashed runs it resolved.
// A crashed run's marker goes only once its tombstones are gone: while it stays, the
// next run finds the run listed as recovered in the latest manifest and retries the
// clean-up without recording those deletions again. So a failure here is harmless.
func (r *runner) cleanup(ctx context.Context) {
	runs := map[string]bool{}
	for _, c := range r.crashed {
		runs[c.RunID] = true
	}
	for _, id := range r.recovered {
		runs[id] = true
	}
	var names []string
	for _, id := range sortedKeys(r.removeTombstones(ctx, runs)) {
		names = append(names, inflightObject(id))
	}
	for _, id := range r.committedMarkers {
		names = append(names, inflightObject(id))
	}
	if r.marker {
		names = append(names, inflightObject(r.runID))
	}
	sort.Strings(names)
	for _, n := range names {
		r.cfg.BeforeWrite(n)
		if err := r.b.Delete(ctx, n, bucket.Condition{}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
			r.log.Warn("cleanup failed", "object", n, "err", err)
		}
	}
	if tc, ok := r.b.(bucket.TempCleaner); ok && r.cfg.Shards == 1 {
		if removed, err := tc.CleanTemp(ctx, 0); err == nil && len(removed) > 0 {
			r.log.Info("removed temp files of crashed writers", "files", strings.Join(removed, ","))
		}
	}
}
