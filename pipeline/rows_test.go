package pipeline

import (
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// TestTake checks take against the value-by-value path (appendValue) for every
// column type the schemas use, with nulls, rows from several records, sliced
// records (arrays with an offset into their buffers) and rows out of order.
func TestTake(t *testing.T) {
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 18, Scale: 2}, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	}, nil)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	// build makes a record of n rows; row k is null in every column when
	// nullEvery > 0 and k%nullEvery == 0.
	build := func(seed, n, nullEvery int) arrow.Record {
		b := array.NewRecordBuilder(mem, sch)
		defer b.Release()
		for k := 0; k < n; k++ {
			if nullEvery > 0 && k%nullEvery == 0 {
				for c := range sch.Fields() {
					b.Field(c).AppendNull()
				}
				continue
			}
			v := seed*1000 + k
			b.Field(0).(*array.StringBuilder).Append(string(rune('a'+v%26)) + "-value")
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(v * 1e6))
			b.Field(2).(*array.Date32Builder).Append(arrow.Date32(v))
			b.Field(3).(*array.Int64Builder).Append(int64(-v))
			b.Field(4).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(v * 7)))
			b.Field(5).(*array.BooleanBuilder).Append(v%2 == 0)
			b.Field(6).(*array.BinaryBuilder).Append([]byte{byte(v), byte(v >> 8)})
		}
		return b.NewRecord()
	}
	whole := build(1, 10, 3)
	defer whole.Release()
	noNulls := build(2, 6, 0)
	defer noNulls.Release()
	sliced := whole.NewSlice(2, 9) // offset 2: rows 1 and 4 of the slice are null
	defer sliced.Release()
	allNull := build(3, 2, 1)
	defer allNull.Release()
	tbl := &table{schema: sch, recs: []arrow.Record{whole, noNulls, sliced, allNull}}

	cases := []struct {
		name string
		refs []rowRef
	}{
		{"no rows", nil},
		{"one record in order", []rowRef{{0, 0}, {0, 1}, {0, 2}, {0, 3}}},
		{"records interleaved, out of order", []rowRef{{1, 5}, {0, 9}, {2, 1}, {1, 0}, {2, 6}, {3, 1}, {0, 3}, {2, 0}, {2, 4}}},
		{"a sliced record only", []rowRef{{2, 6}, {2, 5}, {2, 4}, {2, 3}, {2, 2}, {2, 1}, {2, 0}}},
		{"nulls only", []rowRef{{3, 0}, {0, 0}, {2, 1}}},
		{"repeats", []rowRef{{1, 2}, {1, 2}, {2, 2}, {2, 2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := take(mem, sch, tbl, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Release()
			want := takeByValue(t, mem, sch, tbl, tc.refs)
			defer want.Release()
			if !array.RecordEqual(got, want) {
				t.Errorf("take:\n%v\nwant:\n%v", got, want)
			}
			for c := range sch.Fields() {
				nulls := 0
				for _, r := range tc.refs {
					if tbl.col(r, c).IsNull(int(r.row)) {
						nulls++
					}
				}
				if n := got.Column(c).NullN(); n != nulls {
					t.Errorf("column %s: %d nulls, want %d", sch.Field(c).Name, n, nulls)
				}
			}
		})
	}
}

// takeByValue is take value by value, with appendValue: the reference.
func takeByValue(t *testing.T, mem memory.Allocator, sch *arrow.Schema, tbl *table, refs []rowRef) arrow.Record {
	t.Helper()
	b := array.NewRecordBuilder(mem, sch)
	defer b.Release()
	for c := range sch.Fields() {
		for _, r := range refs {
			if err := appendValue(b.Field(c), tbl.col(r, c), int(r.row)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.NewRecord()
}

// TestCompareRowsAllocatesNothing: compareRows is the comparator that sorts every
// row of the pending and accounts snapshots, and rowsEqual its per-row twin, so
// neither may allocate per call. Both once copied the schema's field list on every
// call: megabytes of garbage per sort of a fleet's pending rows.
func TestCompareRowsAllocatesNothing(t *testing.T) {
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewRecordBuilder(mem, sch)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"a", "a"}, nil)
	b.Field(1).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
	rec := b.NewRecord()
	defer rec.Release()
	tb := &table{schema: sch, recs: []arrow.Record{rec}}
	if d := compareRows(tb, rowRef{0, 0}, tb, rowRef{0, 1}, nil); d >= 0 {
		t.Fatalf("compareRows(row 0, row 1) = %d, want < 0 (1 < 2 in column i)", d)
	}
	if d := compareRows(tb, rowRef{0, 0}, tb, rowRef{0, 1}, []int{1}); d != 0 {
		t.Fatalf("compareRows skipping column i = %d, want 0", d)
	}
	if rowsEqual(tb, rowRef{0, 0}, tb, rowRef{0, 1}, nil) || !rowsEqual(tb, rowRef{0, 0}, tb, rowRef{0, 1}, []int{1}) {
		t.Fatal("rowsEqual disagrees with compareRows")
	}
	for name, fn := range map[string]func(){
		"compareRows": func() { compareRows(tb, rowRef{0, 0}, tb, rowRef{0, 1}, nil) },
		"rowsEqual":   func() { rowsEqual(tb, rowRef{0, 0}, tb, rowRef{0, 1}, nil) },
	} {
		if allocs := testing.AllocsPerRun(100, fn); allocs != 0 {
			t.Errorf("%s allocates %.0f times per call, want 0", name, allocs)
		}
	}
}
