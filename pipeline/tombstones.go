package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/akahu-etl/akahu-parquet/schema"
)

// This file holds tombstones: crashed runs' tombstones this run may adopt (the
// orphan set and its watch list) and writing this run's tombstones.

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

// noteWatched marks ids of crashed runs' tombstones that are present in a partition.
func (r *runner) noteWatched(t *table, rows []rowRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.watch) == 0 {
		return
	}
	for _, row := range rows {
		id := t.str(row, r.cols.id)
		if _, ok := r.watch[id]; ok {
			r.watch[strings.Clone(id)] = true // a held partition's records go first
		}
	}
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
	// Copies: the manifest outlives the records (the tombstones' own are released
	// once written).
	return Tombstone{
		ID: strings.Clone(t.str(ref, r.cols.id)), UserID: strings.Clone(t.str(ref, r.cols.user)),
		AccountID: strings.Clone(t.str(ref, r.cols.account)),
		Date:      dt.Format("2006-01-02T15:04:05.000Z"), DateLocal: day(t.i64(ref, r.cols.dateLocal)).String(),
		Amount: amt.Value(int(ref.row)).ToString(schema.Money.Scale), Description: strings.Clone(t.str(ref, descCol)),
		Reason: reason, Object: object,
	}
}
