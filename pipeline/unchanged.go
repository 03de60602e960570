package pipeline

import (
	"context"
	"errors"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// This file holds the merge stage's ranged check: before a partition is read whole to
// be merged, its footer (whose day digests often decide alone) and the few columns that
// decide whether the merge would change anything are read by range, and a partition
// the fresh rows would leave as it is is neither read whole nor written. It trusts Akahu's updated_at, "when Akahu last
// changed" a transaction, as the transaction's version: a change Akahu makes without
// advancing it is picked up only by a run that reads whole (Config.CompareValues).

// probeCols are the columns the check reads, in this order.
var probeCols = []string{"id", "account_id", "date", "date_local", "updated_at"}

const (
	probeID = iota
	probeAccount
	probeDate
	probeDateLocal
	probeUpdatedAt
)

// mayProbe reports whether the ranged check can tell anything for these fresh rows.
// It cannot while recovering a crashed run (whose rows and tombstones the whole read
// checks) or when a fresh row changed at Akahu after the last committed run finished:
// no committed run can have written that version, so the partition changes, and
// checking would only add reads.
func (r *runner) mayProbe(fresh []arrow.Record) bool {
	if r.cfg.CompareValues || len(r.crashed) > 0 || r.latest == nil {
		return false
	}
	r.mu.Lock()
	watching := len(r.watch) > 0
	r.mu.Unlock()
	if watching {
		return false
	}
	since := r.latest.FinishedAt
	if since.IsZero() {
		since = r.latest.StartedAt
	}
	limit := since.Add(clockSkew).UnixMicro()
	t := &table{schema: r.txSch, recs: fresh}
	for src, rec := range fresh {
		for i := 0; i < int(rec.NumRows()); i++ {
			row := rowRef{int32(src), int32(i)}
			if t.col(row, r.cols.updatedAt).IsNull(i) || t.i64(row, r.cols.updatedAt) > limit {
				return false
			}
			if !t.col(row, r.cols.createdAt).IsNull(i) && t.i64(row, r.cols.createdAt) > limit {
				return false
			}
		}
	}
	return true
}

// unchangedByRange reports whether merging the fresh rows into the partition would
// leave it exactly as it is, reading only its footer (unchangedByDigests: enough when
// the day digests tell) and then probeCols by range; same is
// then the merge's count of unchanged rows. It is true when every fresh row's id is in
// the file once, with the same account, date, local date and a non-null, equal
// updated_at; the fresh rows carry no id twice; no row of a re-read account within its
// re-read dates is missing from them (a deletion or move candidate); and the file's
// rows are unique and in the merge's order. Whenever it cannot tell (a null, a missing
// or changed object, a read that fails, a file of other columns), and for a file no
// larger than the footer read (parquet.TailBytes), it is false and the caller reads
// the partition whole, as without the check, which also reports what is wrong with
// the file.
func (r *runner) unchangedByRange(ctx context.Context, key partKey, fresh []arrow.Record, reread map[string]span) (same int, ok bool) {
	name := txObject(key)
	a, err := r.b.Attrs(ctx, name)
	if err != nil || r.checkOwn(name, &a) != nil || a.Size <= parquetsink.TailBytes {
		return 0, false // a file that small is read whole by range anyway
	}
	fetch, stop := keepRanges(func(off, n int64) ([]byte, error) { return r.b.GetRange(ctx, name, a.Generation, off, n) })
	if same, ok := r.unchangedByDigests(key, fetch, a.Size, fresh, reread); ok {
		return same, true
	}
	stop()
	var fileSch *arrow.Schema
	_, recs, err := parquetsink.ReadRanged(fetch, a.Size, r.mem, parquetsink.Columns(probeCols...), parquetsink.FileSchema(&fileSch))
	if err != nil {
		if !errors.Is(err, bucket.ErrConflict) && !errors.Is(err, bucket.ErrNotFound) {
			r.log.Debug("ranged check of a partition failed; reading it whole", "object", name, "err", err)
		}
		return 0, false
	}
	old := &table{recs: recs}
	defer old.release()
	if checkTxSchema(fileSch) != nil {
		return 0, false
	}

	type oldRow struct {
		account         string
		date, dateLocal int64
		updated         int64
		updatedNull     bool
	}
	byID := make(map[string]oldRow)
	var prev rowRef
	for src, rec := range recs {
		for i := 0; i < int(rec.NumRows()); i++ {
			row := rowRef{int32(src), int32(i)}
			for c := range probeCols[:probeUpdatedAt] {
				if old.col(row, c).IsNull(i) {
					return 0, false
				}
			}
			id := old.str(row, probeID)
			if _, dup := byID[id]; dup {
				return 0, false // the merge keeps one copy: the file changes
			}
			if len(byID) > 0 && !probeLess(old, prev, row) {
				return 0, false // the merge sorts: the file changes
			}
			prev = row
			byID[id] = oldRow{account: old.str(row, probeAccount), date: old.i64(row, probeDate),
				dateLocal: old.i64(row, probeDateLocal), updated: old.i64(row, probeUpdatedAt),
				updatedNull: old.col(row, probeUpdatedAt).IsNull(i)}
		}
	}

	t := &table{schema: r.txSch, recs: fresh}
	seen := make(map[string]bool)
	for src, rec := range fresh {
		for i := 0; i < int(rec.NumRows()); i++ {
			row := rowRef{int32(src), int32(i)}
			id := t.str(row, r.cols.id)
			o, in := byID[id]
			if !in || seen[id] || o.updatedNull || t.col(row, r.cols.updatedAt).IsNull(i) ||
				t.i64(row, r.cols.updatedAt) != o.updated || t.str(row, r.cols.account) != o.account ||
				t.i64(row, r.cols.date) != o.date || t.i64(row, r.cols.dateLocal) != o.dateLocal {
				return 0, false
			}
			seen[id] = true
		}
	}
	for id, o := range byID {
		if sp, reRead := reread[o.account]; reRead && sp.contains(day(o.dateLocal)) && !seen[id] {
			return 0, false // a deletion or move candidate
		}
	}
	return len(seen), true
}

// unchangedByDigests is the ranged check's first path, reading only the footer: the
// partition is unchanged when it carries day digests (digests.go), and on every day of
// its month that some account is re-read on, the fresh rows have the stored row count
// and sum of row hashes, no fresh row is of another day and no id is fresh twice. The
// stored rows of a day are then, but for a hash collision, the fresh rows: nothing is
// missing, new or changed. A day's rows of an account not re-read on it make the counts
// differ, and the column check decides. ok is false whenever it cannot tell.
func (r *runner) unchangedByDigests(key partKey, fetch parquetsink.RangeFunc, size int64, fresh []arrow.Record, reread map[string]span) (same int, ok bool) {
	md, err := parquetsink.ReadMetadataRanged(fetch, size)
	if err != nil {
		return 0, false // the column check reads the same footer and tells what failed
	}
	text, has := md.KeyValue[digestsKey]
	if !has {
		return 0, false // written before the digests, or with a null updated_at
	}
	stored, err := parseDayDigests(text)
	if err != nil || stored.mon != key.month || !txColumns(md) {
		return 0, false
	}
	var total int64
	for _, d := range stored.days {
		total += d.rows
	}
	if total != md.Rows {
		return 0, false
	}
	t := &table{schema: r.txSch, recs: fresh}
	var rows []rowRef
	ids := make(map[string]bool)
	for src, rec := range fresh {
		for i := 0; i < int(rec.NumRows()); i++ {
			row := rowRef{int32(src), int32(i)}
			id := t.str(row, r.cols.id)
			if ids[id] {
				return 0, false
			}
			ids[id] = true
			rows = append(rows, row)
		}
	}
	got, ok := digestRows(r.cols, t, rows, key.month)
	if !ok {
		return 0, false
	}
	reRead := func(d day) bool {
		for _, sp := range reread {
			if sp.contains(d) {
				return true
			}
		}
		return false
	}
	for d := range got.days {
		if !reRead(d) {
			return 0, false
		}
	}
	for d := key.month.first(); d <= key.month.last(); d++ {
		if reRead(d) && stored.days[d] != got.days[d] {
			return 0, false
		}
	}
	return len(rows), true
}

// txColumns reports whether a footer's columns are named as this tool's transactions
// columns (their types the column check and the whole read check).
func txColumns(md parquetsink.Metadata) bool {
	want := schema.Transactions()
	if len(md.Columns) != len(want.Fields()) {
		return false
	}
	for i, f := range want.Fields() {
		if md.Columns[i].Name != f.Name {
			return false
		}
	}
	return true
}

// keepRanges returns fetch remembering what it reads until stop is called, each range
// given again once: the column check after the footer read gets the footer without
// reading it again.
func keepRanges(fetch parquetsink.RangeFunc) (kept parquetsink.RangeFunc, stop func()) {
	type rng struct{ off, n int64 }
	var mu sync.Mutex
	keeping, reads := true, map[rng][]byte{}
	kept = func(off, n int64) ([]byte, error) {
		mu.Lock()
		data, ok := reads[rng{off, n}]
		delete(reads, rng{off, n})
		mu.Unlock()
		if ok {
			return data, nil
		}
		data, err := fetch(off, n)
		mu.Lock()
		if err == nil && keeping {
			reads[rng{off, n}] = append([]byte(nil), data...)
		}
		mu.Unlock()
		return data, err
	}
	stop = func() {
		mu.Lock()
		keeping = false
		mu.Unlock()
	}
	return kept, stop
}

// probeLess reports whether row a comes before row b in the merge's order (sortTx):
// by account, posting time and id.
func probeLess(t *table, a, b rowRef) bool {
	if x, y := t.str(a, probeAccount), t.str(b, probeAccount); x != y {
		return x < y
	}
	if x, y := t.i64(a, probeDate), t.i64(b, probeDate); x != y {
		return x < y
	}
	return t.str(a, probeID) < t.str(b, probeID)
}
