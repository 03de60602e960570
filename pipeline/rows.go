package pipeline

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// This file holds the row-level helpers the merge and snapshots share: a table of
// Arrow records addressed by rowRef, row comparison and taking rows into a record.

// rowRef points at one row of one of a table's source records.
type rowRef struct {
	src int32
	row int32
}

// table is a read-only view over records of one schema, addressed by rowRef.
type table struct {
	schema *arrow.Schema
	recs   []arrow.Record
}

func (t *table) add(rec arrow.Record) int32 {
	t.recs = append(t.recs, rec)
	return int32(len(t.recs) - 1)
}

func (t *table) col(r rowRef, c int) arrow.Array { return t.recs[r.src].Column(c) }

func (t *table) str(r rowRef, c int) string {
	a := t.col(r, c).(*array.String)
	if a.IsNull(int(r.row)) {
		return ""
	}
	return a.Value(int(r.row))
}

func (t *table) i64(r rowRef, c int) int64 {
	switch a := t.col(r, c).(type) {
	case *array.Timestamp:
		return int64(a.Value(int(r.row)))
	case *array.Date32:
		return int64(a.Value(int(r.row)))
	case *array.Int64:
		return a.Value(int(r.row))
	}
	panic(fmt.Sprintf("pipeline: column %d is not integer-like", c))
}

func (t *table) release() {
	for _, r := range t.recs {
		r.Release()
	}
	t.recs = nil
}

// compareValues orders two values of arrays of the same type; nulls sort first.
func compareValues(a arrow.Array, i int, b arrow.Array, j int) int {
	an, bn := a.IsNull(i), b.IsNull(j)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	switch x := a.(type) {
	case *array.String:
		y := b.(*array.String)
		return cmpStr(x.Value(i), y.Value(j))
	case *array.Timestamp:
		return cmpOrd(x.Value(i), b.(*array.Timestamp).Value(j))
	case *array.Date32:
		return cmpOrd(x.Value(i), b.(*array.Date32).Value(j))
	case *array.Int64:
		return cmpOrd(x.Value(i), b.(*array.Int64).Value(j))
	case *array.Decimal128:
		return x.Value(i).Cmp(b.(*array.Decimal128).Value(j))
	case *array.Boolean:
		xv, yv := x.Value(i), b.(*array.Boolean).Value(j)
		switch {
		case xv == yv:
			return 0
		case !xv:
			return -1
		}
		return 1
	case *array.Binary:
		return bytes.Compare(x.Value(i), b.(*array.Binary).Value(j))
	}
	panic(fmt.Sprintf("pipeline: unsupported column type %s", a.DataType()))
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpOrd[T int32 | int64 | arrow.Timestamp | arrow.Date32](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rowsEqual reports whether two rows hold equal values in every column not in skip.
func rowsEqual(ta *table, a rowRef, tb *table, b rowRef, skip []int) bool {
	n := ta.schema.NumFields()
	for c := 0; c < n; c++ {
		if slices.Contains(skip, c) {
			continue
		}
		if compareValues(ta.col(a, c), int(a.row), tb.col(b, c), int(b.row)) != 0 {
			return false
		}
	}
	return true
}

// compareRows orders two rows by every column not in skip, in schema order.
func compareRows(ta *table, a rowRef, tb *table, b rowRef, skip []int) int {
	n := ta.schema.NumFields() // not len(Fields()): Fields copies the list
	for c := 0; c < n; c++ {
		if slices.Contains(skip, c) {
			continue
		}
		if d := compareValues(ta.col(a, c), int(a.row), tb.col(b, c), int(b.row)); d != 0 {
			return d
		}
	}
	return 0
}

// take builds one record of schema sch from the rows refs of t, in order. It goes
// column by column with one type switch per column (not per value), and reserves
// each string column's bytes before appending them.
func take(mem memory.Allocator, sch *arrow.Schema, t *table, refs []rowRef) (arrow.Record, error) {
	b := array.NewRecordBuilder(mem, sch)
	defer b.Release()
	for c := range sch.NumFields() {
		if err := takeColumn(b.Field(c), t, c, refs); err != nil {
			return nil, fmt.Errorf("column %s: %w", sch.Field(c).Name, err)
		}
	}
	return b.NewRecord(), nil
}

// takeColumn appends column c of the rows refs of t to fb.
func takeColumn(fb array.Builder, t *table, c int, refs []rowRef) error {
	fb.Reserve(len(refs))
	switch b := fb.(type) {
	case *array.StringBuilder:
		src, err := columnArrays[*array.String](t, c)
		if err != nil {
			return err
		}
		n := 0
		for _, r := range refs {
			n += src[r.src].ValueLen(int(r.row))
		}
		b.ReserveData(n)
		for _, r := range refs {
			if a, i := src[r.src], int(r.row); a.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(a.Value(i))
			}
		}
	// The fixed-width cases repeat one loop on purpose: a generic helper (dispatching
	// UnsafeAppend through its type's dictionary) made them about 35% slower.
	case *array.TimestampBuilder:
		src, err := fixedColumn(t, c, (*array.Timestamp).TimestampValues)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if v, ok := src[r.src].at(int(r.row)); ok {
				b.UnsafeAppend(v)
			} else {
				b.UnsafeAppendBoolToBitmap(false)
			}
		}
	case *array.Date32Builder:
		src, err := fixedColumn(t, c, (*array.Date32).Date32Values)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if v, ok := src[r.src].at(int(r.row)); ok {
				b.UnsafeAppend(v)
			} else {
				b.UnsafeAppendBoolToBitmap(false)
			}
		}
	case *array.Int64Builder:
		src, err := fixedColumn(t, c, (*array.Int64).Int64Values)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if v, ok := src[r.src].at(int(r.row)); ok {
				b.UnsafeAppend(v)
			} else {
				b.UnsafeAppendBoolToBitmap(false)
			}
		}
	case *array.Decimal128Builder:
		src, err := fixedColumn(t, c, (*array.Decimal128).Values)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if v, ok := src[r.src].at(int(r.row)); ok {
				b.UnsafeAppend(v)
			} else {
				b.UnsafeAppendBoolToBitmap(false)
			}
		}
	default:
		for _, r := range refs {
			if err := appendValue(fb, t.col(r, c), int(r.row)); err != nil {
				return err
			}
		}
	}
	return nil
}

// columnArrays returns column c of each of t's records as an A.
func columnArrays[A arrow.Array](t *table, c int) ([]A, error) {
	out := make([]A, len(t.recs))
	for s, rec := range t.recs {
		a, ok := rec.Column(c).(A)
		if !ok {
			return nil, fmt.Errorf("unsupported type %s", rec.Column(c).DataType())
		}
		out[s] = a
	}
	return out, nil
}

// fixedArray is one array's fixed-width values and validity bitmap.
type fixedArray[T any] struct {
	vals  []T    // indexed like the array
	valid []byte // nil: no nulls
	off   int    // the array's offset into valid
}

// at returns the array's value i, or ok false for a null.
func (f *fixedArray[T]) at(i int) (v T, ok bool) {
	if f.valid != nil && bitutil.BitIsNotSet(f.valid, f.off+i) {
		return v, false
	}
	return f.vals[i], true
}

// fixedColumn returns column c of each of t's records as a fixedArray; values
// returns an array's values.
func fixedColumn[T any, A arrow.Array](t *table, c int, values func(A) []T) ([]fixedArray[T], error) {
	arrs, err := columnArrays[A](t, c)
	if err != nil {
		return nil, err
	}
	out := make([]fixedArray[T], len(arrs))
	for s, a := range arrs {
		out[s] = fixedArray[T]{vals: values(a), off: a.Data().Offset()}
		if a.NullN() > 0 {
			out[s].valid = a.NullBitmapBytes()
		}
	}
	return out, nil
}

func appendValue(b array.Builder, a arrow.Array, i int) error {
	if a.IsNull(i) {
		b.AppendNull()
		return nil
	}
	switch x := a.(type) {
	case *array.String:
		b.(*array.StringBuilder).Append(x.Value(i))
	case *array.Timestamp:
		b.(*array.TimestampBuilder).Append(x.Value(i))
	case *array.Date32:
		b.(*array.Date32Builder).Append(x.Value(i))
	case *array.Int64:
		b.(*array.Int64Builder).Append(x.Value(i))
	case *array.Decimal128:
		b.(*array.Decimal128Builder).Append(x.Value(i))
	case *array.Boolean:
		b.(*array.BooleanBuilder).Append(x.Value(i))
	case *array.Binary:
		b.(*array.BinaryBuilder).Append(x.Value(i))
	default:
		return fmt.Errorf("unsupported type %s", a.DataType())
	}
	return nil
}

// fieldIndex returns the index of a named field, panicking if the schema lacks it:
// the schemas are fixed by package schema, so a miss is a programming error.
func fieldIndex(sch *arrow.Schema, name string) int {
	idx := sch.FieldIndices(name)
	if len(idx) != 1 {
		panic(fmt.Sprintf("pipeline: schema has no single column %q", name))
	}
	return idx[0]
}
