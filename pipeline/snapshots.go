package pipeline

import (
	"context"
	"fmt"
	"sort"

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
