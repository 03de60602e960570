package pipeline

import (
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
)

// txCols are the column indices of the transactions schema the merge needs.
type txCols struct {
	id, account, user, date, dateLocal, createdAt int
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
		skip:      []int{fieldIndex(sch, "_run_id"), fieldIndex(sch, "_extracted_at")},
	}
}

// span is an inclusive range of local dates.
type span struct{ from, to day }

func (s span) contains(d day) bool { return d >= s.from && d <= s.to }

// mergeResult is a partition's new content before deletions are confirmed.
type mergeResult struct {
	t        *table   // old records first, then the fresh ones
	oldRows  int      // rows in the old file
	oldRecs  int32    // records of t that came from the old file
	offsets  []int    // first row index of each old record
	rows     []rowRef // new content, sorted; includes candidates tentatively
	fresh    []string // ids that were not in the old file (inserted or moved in)
	freshRow []rowRef // their rows, in the same order
	updated  int      // ids whose values changed
	same     int      // ids re-read with equal values (old row kept)
	dupFresh int      // duplicate ids in the fresh rows (first one kept)
	// candidates are old rows of re-read accounts that Akahu no longer returned for
	// the window: deleted, or moved to another partition. They stay in rows until
	// the end of the run decides.
	candidates []rowRef
}

// mergePartition merges the old records of one partition with the fresh records the run
// extracted for it. reread maps each account re-read in this partition to the local
// dates re-read; old rows of other accounts and dates are kept as they are.
func mergePartition(cols txCols, sch *arrow.Schema, old, fresh []arrow.Record, reread map[string]span) *mergeResult {
	t := &table{schema: sch}
	res := &mergeResult{t: t}
	var oldRefs, freshRefs []rowRef
	n := 0
	for _, r := range old {
		src := t.add(r)
		for i := 0; i < int(r.NumRows()); i++ {
			oldRefs = append(oldRefs, rowRef{src, int32(i)})
		}
	}
	res.oldRows = len(oldRefs)
	res.oldRecs = int32(len(old))
	for _, r := range old {
		res.offsets = append(res.offsets, n)
		n += int(r.NumRows())
	}
	for _, r := range fresh {
		src := t.add(r)
		for i := 0; i < int(r.NumRows()); i++ {
			freshRefs = append(freshRefs, rowRef{src, int32(i)})
		}
	}

	freshByID := make(map[string]rowRef, len(freshRefs))
	for _, f := range freshRefs {
		id := t.str(f, cols.id)
		if _, dup := freshByID[id]; dup {
			res.dupFresh++
			continue
		}
		freshByID[id] = f
	}
	consumed := make(map[string]bool, len(freshByID))
	seenOld := make(map[string]bool, len(oldRefs))
	rows := make([]rowRef, 0, len(oldRefs)+len(freshByID))
	for _, o := range oldRefs {
		id := t.str(o, cols.id)
		if seenOld[id] {
			continue // a duplicate in the old file: keep the first copy only
		}
		seenOld[id] = true
		f, isFresh := freshByID[id]
		sp, reRead := reread[t.str(o, cols.account)]
		switch {
		case isFresh && rowsEqual(t, o, t, f, cols.skip):
			res.same++
			rows = append(rows, o)
		case isFresh:
			res.updated++
			rows = append(rows, f)
		case reRead && sp.contains(day(t.i64(o, cols.dateLocal))):
			res.candidates = append(res.candidates, o)
			rows = append(rows, o)
		default:
			rows = append(rows, o)
		}
		if isFresh {
			consumed[id] = true
		}
	}
	for _, f := range freshRefs {
		id := t.str(f, cols.id)
		if consumed[id] || freshByID[id] != f {
			continue
		}
		res.fresh = append(res.fresh, id)
		res.freshRow = append(res.freshRow, f)
		rows = append(rows, f)
	}
	sortTx(t, cols, rows)
	res.rows = rows
	return res
}

// sortTx orders rows by account, posting time and id: deterministic, and it clusters
// each account's rows for readers that filter on account_id.
func sortTx(t *table, cols txCols, rows []rowRef) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if x, y := t.str(a, cols.account), t.str(b, cols.account); x != y {
			return x < y
		}
		if x, y := t.i64(a, cols.date), t.i64(b, cols.date); x != y {
			return x < y
		}
		return t.str(a, cols.id) < t.str(b, cols.id)
	})
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
