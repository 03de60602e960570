package pipeline

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
)

// peakAllocator is Go memory that counts the bytes allocated through it and not yet
// freed, and their peak.
type peakAllocator struct {
	memory.GoAllocator
	mu        sync.Mutex
	cur, peak int64
}

func (p *peakAllocator) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur += n
	p.peak = max(p.peak, p.cur)
}

func (p *peakAllocator) Allocate(size int) []byte {
	b := p.GoAllocator.Allocate(size)
	p.add(int64(cap(b)))
	return b
}

func (p *peakAllocator) Free(b []byte) { p.add(-int64(cap(b))) }

// Reallocate counts a grown buffer's new bytes before its old ones go: both are
// held while the copy is made.
func (p *peakAllocator) Reallocate(size int, b []byte) []byte {
	n := p.GoAllocator.Reallocate(size, b)
	if cap(n) != cap(b) {
		p.add(int64(cap(n)))
		p.add(-int64(cap(b)))
	}
	return n
}

// TestCompactCopiesAColumnAtATime: compacting a held partition's fresh rows (one
// record per walk, a dense month's megabytes) into one record lets each column's
// parts go as soon as that column is copied: at its peak it holds the rows once
// plus about one column, not twice (until 2026-12-03 it concatenated every column
// before releasing any, the highest moment of the runs that held dense months).
func TestCompactCopiesAColumnAtATime(t *testing.T) {
	sch := schema.Transactions()
	pa := &peakAllocator{}
	old := records(t, "run_old", tx{"trans_old", "acc_000", "2026-02-01", "-1", "old"})
	m := &mergeResult{t: &table{schema: sch, recs: old}, oldRecs: 1}
	m.rows = append(m.rows, rowRef{0, 0})
	var want []string
	for w := range 40 { // a walk's record each, 100 rows
		var txs []tx
		for i := range 100 {
			txs = append(txs, tx{fmt.Sprintf("trans_%02d_%03d", w, i), fmt.Sprintf("acc_%03d", w), "2026-02-10", "-2.50", fmt.Sprintf("dense month row %d of walk %d", i, w)})
		}
		recs := records(t, "run_new", txs...)
		own, err := concatReleasing(pa, sch, recs) // its buffers counted by pa
		if err != nil {
			t.Fatal(err)
		}
		src := m.t.add(own)
		for i := range 100 {
			m.rows = append(m.rows, rowRef{src, int32(i)})
		}
		for _, x := range txs {
			want = append(want, x.id)
		}
	}
	defer m.t.release()
	fresh := pa.cur
	pa.peak = fresh

	if err := m.compact(pa); err != nil {
		t.Fatal(err)
	}
	if len(m.t.recs) != 2 {
		t.Fatalf("%d records after compact, want the old one and one fresh", len(m.t.recs))
	}
	id := newTxCols(sch).id
	var got []string
	for _, row := range m.rows[1:] {
		got = append(got, m.t.str(row, id))
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows after compact point to %d ids, not the fresh rows in order", len(got))
	}
	if over := pa.peak - fresh; over > fresh/3 {
		t.Errorf("compacting %d bytes of fresh records held %d bytes more at its peak, want under a third of them (one column at a time)", fresh, over)
	}
	if pa.cur > fresh {
		t.Errorf("%d bytes after compact, more than the %d of the fresh records", pa.cur, fresh)
	}
}

// TestConcatReleasingRestores: when a column cannot be concatenated, the records
// concatReleasing was given are whole again, with the same rows, the columns already
// copied included.
func TestConcatReleasingRestores(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	i64 := arrow.PrimitiveTypes.Int64
	sch := arrow.NewSchema([]arrow.Field{{Name: "a", Type: i64}, {Name: "b", Type: arrow.BinaryTypes.String}, {Name: "c", Type: i64}}, nil)
	odd := arrow.NewSchema([]arrow.Field{{Name: "a", Type: i64}, {Name: "b", Type: arrow.BinaryTypes.String}, {Name: "c", Type: arrow.BinaryTypes.String}}, nil)
	build := func(s *arrow.Schema, first int64, n int) arrow.Record {
		b := array.NewRecordBuilder(mem, s)
		defer b.Release()
		for i := range int64(n) {
			b.Field(0).(*array.Int64Builder).Append(first + i)
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprint("row ", first+i))
			switch f := b.Field(2).(type) {
			case *array.Int64Builder:
				f.Append(-(first + i))
			case *array.StringBuilder:
				f.Append(fmt.Sprint(-(first + i)))
			}
		}
		return b.NewRecord()
	}
	recs := []arrow.Record{build(sch, 0, 3), build(odd, 3, 2), build(sch, 5, 4)}
	var copies []arrow.Record
	for _, rec := range recs {
		rec.Retain()
		copies = append(copies, rec)
	}
	if _, err := concatReleasing(mem, sch, recs); err == nil {
		t.Fatal("concatenated an int64 column with a string one")
	}
	for k, rec := range recs {
		if !array.RecordEqual(rec, copies[k]) {
			t.Errorf("record %d after the failure differs", k)
		}
		rec.Release()
		copies[k].Release()
	}
}
