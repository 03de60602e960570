package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/akahu-etl/akahu-parquet/schema"
)

// This file holds the snapshot stage: the pending and account snapshots of each
// bucket, in which the accounts this run fetched replace their rows and others keep theirs.

// writePending replaces the pending snapshot of each bucket: rows of the accounts this
// run fetched are replaced (an account whose list came back empty loses them all),
// others kept; an account whose pending rows did not change keeps its old rows, so an
// unchanged snapshot is not rewritten.
func (r *runner) writePending(ctx context.Context) error {
	sch := schema.Pending()
	for _, bk := range sortedInts(r.pend.fetched) {
		rec := r.pend.builders[bk].NewRecord()
		n, err := r.replaceSnapshot(ctx, "pending", pendingObject(bk), sch, []arrow.Record{rec}, r.pend.fetched[bk])
		rec.Release()
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.m.Counts.Pending += n
		r.mu.Unlock()
	}
	return nil
}

// pendingRows collects the pending rows the run fetched: one builder per bucket (not a
// record per account, whose fixed cost would grow memory with the accounts), and the
// accounts whose lists were fetched, by bucket.
type pendingRows struct {
	mu       sync.Mutex
	builders map[int]*schema.PendingBuilder
	fetched  map[int][]string
	check    sync.Pool // *schema.PendingBuilder: validates an account's items first
}

// release frees the builders.
func (p *pendingRows) release() {
	for _, b := range p.builders {
		b.Release()
	}
}

// addAccountRow appends the account's row of today's accounts snapshot, from its
// JSON as served, to its bucket's rows. The plan builds the rows as it chooses the
// accounts, so that no account's JSON is kept through the run, then sends them to the
// spill file (spillAccountRows): the snapshot costs no memory until it is written. An
// account whose JSON is not a valid row fails when the snapshot is written, after its
// transactions were extracted.
func (r *runner) addAccountRow(a *acctRun, raw []byte) {
	if r.accountRows == nil {
		r.accountRows = map[int]*accountRows{}
	}
	rows := r.accountRows[a.bucket]
	if rows == nil {
		rows = &accountRows{b: schema.NewAccountBuilder(r.mem, schema.Options{Location: r.loc, RunID: r.runID, ExtractedAt: r.started})}
		r.accountRows[a.bucket] = rows
	}
	if err := rows.b.Append(raw, a.user.me.ID); err != nil {
		a.snapErr = err
	}
}

// accountRows are one bucket's accounts-snapshot rows kept in memory: being built
// (b), or built (rec) when the spill failed.
type accountRows struct {
	b   *schema.AccountBuilder
	rec arrow.Record
}

// spillAccountRows sends the accounts-snapshot rows of each bucket to the spill file.
// A bucket whose rows cannot be spilled keeps them in memory.
func (r *runner) spillAccountRows() {
	for bk, rows := range r.accountRows {
		rec := rows.b.NewRecord()
		rows.b.Release()
		rows.b = nil
		seg, err := r.spill.writeAs(schema.Accounts(), []arrow.Record{rec})
		if err != nil {
			r.log.Warn("accounts-snapshot rows kept in memory", "bucket", bk, "err", err)
			rows.rec = rec
			continue
		}
		rec.Release()
		delete(r.accountRows, bk)
		if r.spilledAccounts == nil {
			r.spilledAccounts = map[int]*segment{}
		}
		r.spilledAccounts[bk] = seg
	}
}

// accountRecord returns a bucket's accounts-snapshot rows; the caller releases them.
func (r *runner) accountRecord(bk int) (arrow.Record, error) {
	if seg := r.spilledAccounts[bk]; seg != nil {
		recs, err := r.spill.readAs(schema.Accounts(), seg)
		if err != nil {
			return nil, fmt.Errorf("accounts snapshot of bucket %d: %w", bk, err)
		}
		if len(recs) == 1 {
			return recs[0], nil
		}
		defer func() {
			for _, rec := range recs {
				rec.Release()
			}
		}()
		return concatRecords(r.mem, schema.Accounts(), recs)
	}
	rows := r.accountRows[bk]
	if rows.b != nil {
		return rows.b.NewRecord(), nil
	}
	rows.rec.Retain()
	return rows.rec, nil
}

// releaseAccountRows frees the accounts-snapshot rows kept in memory.
func (r *runner) releaseAccountRows() {
	for _, rows := range r.accountRows {
		if rows.b != nil {
			rows.b.Release()
		}
		if rows.rec != nil {
			rows.rec.Release()
		}
	}
	r.accountRows = nil
}

// writeAccounts writes today's account snapshot of each bucket: the rows built at
// plan time of the accounts whose users stayed served (the rows of others' accounts
// are left out by replaceSnapshot, which takes only the accounts it is given).
func (r *runner) writeAccounts(ctx context.Context) error {
	sch := schema.Accounts()
	byBucket := map[int][]string{}
	for _, a := range r.accounts {
		if a.user.isRefused() || a.user.err != nil {
			continue
		}
		if a.snapErr != nil {
			a.fail(fmt.Errorf("account %s: %w: %w", a.acct.ID, ErrBadResponse, a.snapErr))
			continue
		}
		byBucket[a.bucket] = append(byBucket[a.bucket], a.acct.ID)
	}
	today := dayOfTime(r.started, r.loc)
	for _, bk := range sortedInts(byBucket) {
		rec, err := r.accountRecord(bk)
		if err != nil {
			return err
		}
		n, err := r.replaceSnapshot(ctx, "accounts", accountsObject(today, bk), sch, []arrow.Record{rec}, byBucket[bk])
		rec.Release()
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
// as a whole: every account listed (fetched) gets exactly its rows in fresh, none if
// fresh has none; other accounts keep theirs. Rows are compared without lineage
// columns; an account whose rows are equal keeps its old rows. Returns the rows of the
// fetched accounts.
func (r *runner) replaceSnapshot(ctx context.Context, kind, name string, sch *arrow.Schema, fresh []arrow.Record, accounts []string) (int64, error) {
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
		newBy[id] = []rowRef{} // fetched, even with no rows
		if oldBy[id] == nil {
			order = append(order, id)
		}
	}
	for _, rec := range fresh {
		src := t.add(rec)
		for i := 0; i < int(rec.NumRows()); i++ {
			ref := rowRef{src, int32(i)}
			id := t.str(ref, acctCol)
			if _, ok := newBy[id]; !ok {
				continue // not an account of this object
			}
			newBy[id] = append(newBy[id], ref)
			count++
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
