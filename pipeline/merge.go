package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// This file holds the merge stage: merging a partition with the run's fresh windows,
// classifying its rows, and writing it or holding it back when it may lose rows.

// txCols are the column indices of the transactions schema the merge needs.
type txCols struct {
	id, account, user, date, dateLocal, createdAt, updatedAt int
	// skip lists the lineage columns (_run_id, _extracted_at) ignored when deciding
	// whether a row changed: an unchanged row keeps the lineage of the run that wrote it,
	// which is what makes a re-run byte-identical.
	skip []int
}

func newTxCols(sch *arrow.Schema) txCols {
	return txCols{
		id:        fieldIndex(sch, "id"),
		account:   fieldIndex(sch, "account_id"),
		user:      fieldIndex(sch, "user_id"),
		date:      fieldIndex(sch, "date"),
		dateLocal: fieldIndex(sch, "date_local"),
		createdAt: fieldIndex(sch, "created_at"),
		updatedAt: fieldIndex(sch, "updated_at"),
		skip:      []int{fieldIndex(sch, "_run_id"), fieldIndex(sch, "_extracted_at")},
	}
}

// span is an inclusive range of local dates.
type span struct{ from, to day }

func (s span) contains(d day) bool { return d >= s.from && d <= s.to }

// mergeResult is a partition's new content before deletions are confirmed.
type mergeResult struct {
	t       *table   // old records first, then the fresh ones
	oldRows int      // rows in the old file
	oldRecs int32    // records of t that came from the old file
	offsets []int    // first row index of each old record
	rows    []rowRef // new content, sorted; includes candidates tentatively
	// candidates are old rows of re-read accounts that Akahu no longer returned for
	// the window: deleted, or moved to another partition. They stay in rows until
	// the end of the run decides.
	candidates []rowRef
	mergeCounts
}

// mergeCounts is what one merge of fresh records did.
type mergeCounts struct {
	fresh    []string // ids that were not in the partition (inserted or moved in)
	freshRow []rowRef // their rows, in the same order
	updated  int      // ids whose values changed
	same     int      // ids re-read with equal values (old row kept)
	dupFresh int      // duplicate ids in the fresh rows (first one kept)
	// kept are the ids re-read that were already in the partition (updated or
	// same); collected only when asked (while recovering a crashed run).
	kept []string
}

// mergePartition merges the old records of one partition with the fresh records the run
// extracted for it. reread maps each account re-read in this partition to the local
// dates re-read; old rows of other accounts and dates are kept as they are.
func mergePartition(cols txCols, sch *arrow.Schema, old, fresh []arrow.Record, reread map[string]span, keepIDs bool) *mergeResult {
	t := &table{schema: sch}
	res := &mergeResult{t: t}
	oldRefs := addRecords(t, old, nil)
	res.oldRows = len(oldRefs)
	res.oldRecs = int32(len(old))
	n := 0
	for _, r := range old {
		res.offsets = append(res.offsets, n)
		n += int(r.NumRows())
	}
	freshRefs := addRecords(t, fresh, nil)
	res.rows, res.candidates, res.mergeCounts = mergeRows(cols, t, oldRefs, freshRefs, reread, keepIDs)
	return res
}

// addRecords adds records to a table and appends references to their rows.
func addRecords(t *table, recs []arrow.Record, refs []rowRef) []rowRef {
	for _, r := range recs {
		src := t.add(r)
		for i := 0; i < int(r.NumRows()); i++ {
			refs = append(refs, rowRef{src, int32(i)})
		}
	}
	return refs
}

// mergeRows merges fresh rows into a partition's current rows (base): a fresh row
// replaces the current row of its id unless they are equal, a current row of a
// re-read account and date that no fresh row carries is a candidate, and fresh rows
// of new ids are added. The result is sorted. With keepIDs, c.kept lists the ids
// re-read that the partition already had.
func mergeRows(cols txCols, t *table, base, freshRefs []rowRef, reread map[string]span, keepIDs bool) (rows, candidates []rowRef, c mergeCounts) {
	freshByID := make(map[string]rowRef, len(freshRefs))
	for _, f := range freshRefs {
		id := t.str(f, cols.id)
		if _, dup := freshByID[id]; dup {
			c.dupFresh++
			continue
		}
		freshByID[id] = f
	}
	consumed := make(map[string]bool, len(freshByID))
	seenOld := make(map[string]bool, len(base))
	rows = make([]rowRef, 0, len(base)+len(freshByID))
	for _, o := range base {
		id := t.str(o, cols.id)
		if seenOld[id] {
			continue // a duplicate in the old file: keep the first copy only
		}
		seenOld[id] = true
		f, isFresh := freshByID[id]
		sp, reRead := reread[t.str(o, cols.account)]
		switch {
		case isFresh && rowsEqual(t, o, t, f, cols.skip):
			c.same++
			rows = append(rows, o)
		case isFresh:
			c.updated++
			rows = append(rows, f)
		case reRead && sp.contains(day(t.i64(o, cols.dateLocal))):
			candidates = append(candidates, o)
			rows = append(rows, o)
		default:
			rows = append(rows, o)
		}
		if isFresh {
			consumed[id] = true
			if keepIDs {
				c.kept = append(c.kept, id)
			}
		}
	}
	for _, f := range freshRefs {
		id := t.str(f, cols.id)
		if consumed[id] || freshByID[id] != f {
			continue
		}
		c.fresh = append(c.fresh, id)
		c.freshRow = append(c.freshRow, f)
		rows = append(rows, f)
	}
	sortTx(t, cols, rows)
	return rows, candidates, c
}

// mergeMore merges the fresh records of a later re-read (other accounts, or other
// dates) into a partition this run holds: the rows it decided stay unless the new
// records carry their ids, its candidates stay candidates unless the new records
// returned them, and the new re-read's missing rows become candidates too. The old
// file's description (oldRows, offsets) is untouched, so final still compares with
// what is stored. It returns what this merge did.
func (m *mergeResult) mergeMore(cols txCols, fresh []arrow.Record, reread map[string]span, keepIDs bool) mergeCounts {
	freshRefs := addRecords(m.t, fresh, nil)
	rows, cands, c := mergeRows(cols, m.t, m.rows, freshRefs, reread, keepIDs)
	returned := make(map[string]bool, len(freshRefs))
	for _, f := range freshRefs {
		returned[m.t.str(f, cols.id)] = true
	}
	kept := make([]rowRef, 0, len(m.candidates)+len(cands))
	for _, o := range m.candidates {
		if !returned[m.t.str(o, cols.id)] {
			kept = append(kept, o)
		}
	}
	m.rows, m.candidates = rows, append(kept, cands...)
	m.fresh = append(m.fresh, c.fresh...)
	m.freshRow = append(m.freshRow, c.freshRow...)
	m.updated += c.updated
	m.same += c.same
	m.dupFresh += c.dupFresh
	return c
}

// sortTx orders rows by account, posting time and id: deterministic, and it clusters
// each account's rows for readers that filter on account_id. The keys are read
// once per row, not once per comparison, and accounts (a partition has few) compare
// by their rank.
func sortTx(t *table, cols txCols, rows []rowRef) {
	type key struct {
		account int
		date    int64
		id      string
		ref     rowRef
	}
	keys := make([]key, len(rows))
	rank := map[string]int{}
	var accounts []string
	for i, r := range rows {
		a := t.str(r, cols.account)
		n, ok := rank[a]
		if !ok {
			n = len(accounts)
			rank[a] = n
			accounts = append(accounts, a)
		}
		keys[i] = key{account: n, date: t.i64(r, cols.date), id: t.str(r, cols.id), ref: r}
	}
	if len(accounts) > 1 {
		order := make([]int, len(accounts)) // first-seen index -> rank in account order
		byName := slices.Clone(accounts)
		slices.Sort(byName)
		for i, a := range byName {
			order[rank[a]] = i
		}
		for i := range keys {
			keys[i].account = order[keys[i].account]
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.account, b.account); c != 0 {
			return c
		}
		if c := cmp.Compare(a.date, b.date); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for i, k := range keys {
		rows[i] = k.ref
	}
}

// final returns the partition rows without the given ids, and whether the content
// differs from the old file.
func (m *mergeResult) final(cols txCols, drop map[string]bool) (rows []rowRef, changed bool) {
	rows = m.rows
	if len(drop) > 0 {
		rows = make([]rowRef, 0, len(m.rows))
		for _, r := range m.rows {
			if !drop[m.t.str(r, cols.id)] {
				rows = append(rows, r)
			}
		}
	}
	if len(rows) != m.oldRows {
		return rows, true
	}
	// Unchanged means: exactly the old rows, in the old order.
	for i, r := range rows {
		if r.src >= m.oldRecs || m.offsets[r.src]+int(r.row) != i {
			return rows, true
		}
	}
	return rows, false
}

// compact copies the fresh records of a partition about to be held into one record,
// a column at a time (concatReleasing), and points its rows there. A partition's
// rows can come as many small records (in a daily run, a walk's record whose rows
// are all of the partition, one per user, and batches read back from the spill);
// held until the end of the run, they would keep memory growing with the users.
func (m *mergeResult) compact(mem memory.Allocator) error {
	fresh := m.t.recs[m.oldRecs:]
	if len(fresh) < 2 {
		return nil
	}
	first := make([]int32, len(fresh)) // each fresh record's first row in one
	var n int32
	for i, rec := range fresh {
		first[i] = n
		n += int32(rec.NumRows())
	}
	one, err := concatReleasing(mem, m.t.schema, fresh)
	if err != nil {
		return fmt.Errorf("hold partition: %w", err)
	}
	for _, refs := range [][]rowRef{m.rows, m.candidates, m.freshRow} {
		for i, ref := range refs {
			if ref.src >= m.oldRecs {
				refs[i] = rowRef{m.oldRecs, first[ref.src-m.oldRecs] + ref.row}
			}
		}
	}
	m.t.recs = append(m.t.recs[:m.oldRecs], one)
	return nil
}

// mergeAndWrite merges one partition with its fresh windows and writes it through
// upload (which runs the write of size encoded bytes, possibly after mergeAndWrite
// returns), or holds it back when it may lose rows.
func (r *runner) mergeAndWrite(ctx context.Context, ps *partState, upload func(size int64, write func(context.Context) error) error) error {
	if err := r.lease.check(); err != nil {
		for _, res := range ps.results {
			res.release()
		}
		return err
	}
	reread := map[string]span{}
	var held int64
	defer func() { r.spill.free(held) }()
	fresh, err := r.freshRecords(ps.results)
	if err != nil {
		return fmt.Errorf("merge %s: %w", txObject(ps.key), err)
	}
	for _, res := range ps.results {
		if res.err != nil {
			continue
		}
		held += res.held
		for _, w := range res.ws {
			if !w.acct.failed() {
				reread[w.acct.acct.ID] = w.span
			}
		}
	}
	if len(reread) == 0 {
		for _, rec := range fresh {
			rec.Release()
		}
		return nil // every window of the partition failed: the file stays as it is
	}
	r.mu.Lock()
	h := r.held[ps.key]
	r.mu.Unlock()
	if h != nil {
		// A re-read (neighbouring month, or a month a transaction moved to) reached a
		// partition this run holds back: its windows join the held state, which is
		// written once at the end. Read from storage and written now, the partition
		// would change under the held write, which would then fail as a conflict with
		// this very run. Only this goroutine touches h until extraction is over.
		if err := r.loadHeld(h); err != nil {
			for _, rec := range fresh {
				rec.Release()
			}
			return err
		}
		c := h.res.mergeMore(r.cols, fresh, reread, len(r.crashed) > 0)
		r.mu.Lock()
		r.noteMerge(ps.key, h.res.t, c)
		r.mu.Unlock()
		r.rehold(h)
		return nil
	}
	if r.mayProbe(fresh) {
		if same, ok := r.unchangedByRange(ctx, ps.key, fresh, reread); ok {
			// Neither read whole nor written: the merge would keep every old row.
			for _, rec := range fresh {
				rec.Release()
			}
			r.mu.Lock()
			r.noteMerge(ps.key, nil, mergeCounts{same: same})
			r.mu.Unlock()
			return nil
		}
	}
	old, prev, err := r.readPartition(ctx, ps.key, nil)
	if err != nil {
		for _, rec := range fresh {
			rec.Release()
		}
		return err
	}
	res := mergePartition(r.cols, r.txSch, old, fresh, reread, len(r.crashed) > 0)
	r.mu.Lock()
	r.noteMerge(ps.key, res.t, res.mergeCounts)
	if len(res.candidates) > 0 {
		if err := res.compact(r.mem); err != nil {
			r.mu.Unlock()
			res.t.release()
			return err
		}
		h := &heldPart{key: ps.key, prev: prev, res: res}
		r.deferred = append(r.deferred, h)
		if r.held == nil {
			r.held = map[partKey]*heldPart{}
		}
		r.held[ps.key] = h
		r.mu.Unlock()
		r.keepHeld(h)
		return nil
	}
	r.mu.Unlock()
	defer res.t.release()
	rows, changed := res.final(r.cols, nil)
	r.noteWatched(res.t, rows)
	if !changed {
		r.adopt("transactions", txObject(ps.key), prev, int64(len(rows)))
		return nil
	}
	write, size, err := r.encodeTx(ps.key, res.t, rows, prev)
	if err != nil {
		return err
	}
	return upload(size, write)
}

// sliceMinRows is the length from which a range goes to the merge as a record slice
// (a few dozen arrays sharing its record's buffers) rather than copied: a dense
// account's month is cheaper sliced, a quiet account's row or two cheaper copied.
const sliceMinRows = 32

// freshRecords returns the rows of a partition's results (the failed ones skipped) as
// records, in the results' order: a range that is all of its record (a gathered one)
// as that record, a range of sliceMinRows rows or more as a slice of its record, each
// run of the other ranges gathered into one record, and a spilled result as the
// records read back. The ranges' references go to the records returned or are
// released, also when it fails; the caller releases the records.
func (r *runner) freshRecords(results []windowResult) ([]arrow.Record, error) {
	var fresh, partial []rowRange
	var err error
	flush := func() {
		if len(partial) > 0 && err == nil {
			var one arrow.Record
			if one, err = gather(r.mem, r.txSch, partial); err == nil {
				fresh = append(fresh, rowRange{rec: one})
			}
		}
		releaseRanges(partial)
		partial = partial[:0]
	}
	for _, res := range results {
		if res.err != nil {
			continue
		}
		for _, g := range res.rows {
			switch {
			case g.whole():
				flush()
				fresh = append(fresh, g)
			case g.hi-g.lo >= sliceMinRows:
				flush()
				fresh = append(fresh, rowRange{rec: g.rec.NewSlice(int64(g.lo), int64(g.hi))})
				g.rec.Release()
			default:
				partial = append(partial, g)
			}
		}
		if res.seg != nil && err == nil {
			flush()
			var recs []arrow.Record
			if recs, err = r.spill.read(res.seg); err == nil {
				for _, rec := range recs {
					fresh = append(fresh, rowRange{rec: rec})
				}
			}
		}
	}
	flush()
	if err != nil {
		releaseRanges(fresh)
		return nil, err
	}
	out := make([]arrow.Record, len(fresh))
	for i, g := range fresh {
		out[i] = g.rec
	}
	return out, nil
}

// noteMerge counts one merge into a partition and records the ids new to it (and,
// while recovering a crashed run, the ids it already had: the crashed run may have
// written a moved row's new partition and died before removing it from the old
// one, so those ids are looked for in other partitions too). r.mu must be held.
func (r *runner) noteMerge(key partKey, t *table, c mergeCounts) {
	r.m.Counts.Updated += int64(c.updated)
	r.m.Counts.Unchanged += int64(c.same)
	r.m.Counts.Duplicates += int64(c.dupFresh)
	if r.trackFresh {
		if r.freshIDs == nil {
			r.freshIDs = map[string]partKey{}
		}
		for i, id := range c.fresh {
			r.freshIDs[strings.Clone(id)] = key // the records go before the run ends
			if !r.suspicious && !r.surelyNew(t, c.freshRow[i]) {
				r.suspicious = true
			}
		}
	}
	for _, id := range c.kept {
		if r.keptIDs == nil {
			r.keptIDs = map[string]partKey{}
		}
		r.keptIDs[strings.Clone(id)] = key
	}
	r.m.Counts.Inserted += int64(len(c.fresh)) // moves are subtracted at the end
}

// clockSkew bounds how far this machine's clock and Akahu's may disagree.
const clockSkew = 5 * time.Minute

// surelyNew reports whether a row's transaction was created at Akahu after the last
// committed run started, so no earlier run can have written it anywhere.
func (r *runner) surelyNew(t *table, row rowRef) bool {
	if r.latest == nil || len(r.crashed) > 0 || t.col(row, r.cols.createdAt).IsNull(int(row.row)) {
		return false
	}
	return t.i64(row, r.cols.createdAt) > r.latest.StartedAt.Add(clockSkew).UnixMicro()
}
