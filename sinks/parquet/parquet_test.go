package parquet

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	aparquet "github.com/apache/arrow/go/v17/parquet"
	acompress "github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	aschema "github.com/apache/arrow/go/v17/parquet/schema"
	parquetgo "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 1000), testRecord(mem, 1000, 1), testRecord(mem, 1001, 499)}
	defer releaseAll(recs)

	data, info := writeBytes(t, sch, recs)
	if info != (FileInfo{Rows: 1500, RowGroups: 1}) {
		t.Errorf("FileInfo = %+v, want 1500 rows in 1 row group", info)
	}
	gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	defer releaseAll(got)
	if !gotSch.Equal(sch) {
		t.Errorf("schema:\n got %v\nwant %v", gotSch, sch)
	}
	if !gotSch.Metadata().Equal(sch.Metadata()) {
		t.Errorf("schema metadata: got %v, want %v", gotSch.Metadata(), sch.Metadata())
	}
	for i, f := range sch.Fields() {
		if g := gotSch.Field(i); !g.Metadata.Equal(f.Metadata) || g.Nullable != f.Nullable {
			t.Errorf("field %q: got nullable=%v metadata %v, want nullable=%v %v", f.Name, g.Nullable, g.Metadata, f.Nullable, f.Metadata)
		}
	}
	assertSameRows(t, mem, recs, sch, got, gotSch)

	// Spot-check the values the invariants care about, independently of
	// array.Equal.
	amount := got[0].Column(7).(*array.Decimal128)
	if v := amount.Value(0); v != decimal128.FromI64(maxDec18) || v.ToString(4) != "99999999999999.9999" {
		t.Errorf("amount[0] = %s, want 99999999999999.9999", v.ToString(4))
	}
	if v := amount.Value(1); v.ToString(4) != "-99999999999999.9999" {
		t.Errorf("amount[1] = %s, want -99999999999999.9999", v.ToString(4))
	}
	if v := got[0].Column(13).(*array.Decimal128).Value(0).ToString(10); v != "99999999.9999999999" {
		t.Errorf("conversion_rate[0] = %s", v)
	}
	date := got[0].Column(3).(*array.Timestamp)
	if got := date.Value(1).ToTime(arrow.Microsecond); !got.Equal(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date[1] = %v, want 2100-01-01", got)
	}
	if got := got[0].Column(4).(*array.Date32).Value(1).ToTime(); !got.Equal(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date_local[1] = %v, want 1900-01-01", got)
	}
	for ci, f := range sch.Fields() {
		if f.Nullable && got[0].Column(ci).NullN() == 0 {
			t.Errorf("nullable column %q came back without nulls; the test data should have some", f.Name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	mem := memory.NewGoAllocator()
	sch := testSchema()
	mk := func() []arrow.Record { return []arrow.Record{testRecord(mem, 0, 3000), testRecord(mem, 3000, 1234)} }
	a, b := mk(), mk()
	defer releaseAll(a)
	defer releaseAll(b)
	opts := []Option{WithRowGroupRows(1000), WithKeyValue("run", "r1"), WithKeyValue("a", "first")}
	first, _ := writeBytes(t, sch, a, opts...)
	second, _ := writeBytes(t, sch, b, opts...)
	if !bytes.Equal(first, second) {
		t.Fatalf("two writes of equal records differ (%d vs %d bytes)", len(first), len(second))
	}
	// Slicing the same rows into different record batches must not change
	// the file either.
	one := []arrow.Record{testRecord(mem, 0, 4234)}
	defer releaseAll(one)
	if third, _ := writeBytes(t, sch, one, opts...); !bytes.Equal(first, third) {
		t.Errorf("same rows in different batches give different bytes")
	}
	// Read and re-write with the schema Read returns: the pipeline's merge
	// step does this for untouched partitions and must not change a byte.
	gotSch, got, err := Read(bytes.NewReader(first), int64(len(first)), mem)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(got)
	again, _ := writeBytes(t, gotSch, got, WithRowGroupRows(1000))
	if !bytes.Equal(first, again) {
		t.Errorf("read then re-write changed the file (%d vs %d bytes)", len(first), len(again))
	}
	if bytes.Contains(first, []byte(time.Now().UTC().Format("2006-01-02"))) {
		t.Errorf("file contains today's date")
	}
}

// TestPqarrowReadsOurFile reads our output with Arrow's own Parquet reader:
// an independent check of both the values and the exact Parquet types.
func TestPqarrowReadsOurFile(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 2500)}
	defer releaseAll(recs)
	data, _ := writeBytes(t, sch, recs, WithRowGroupRows(1000))

	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("arrow parquet reader: %v", err)
	}
	defer rdr.Close()
	fm := rdr.MetaData()
	if fm.NumRows != 2500 || rdr.NumRowGroups() != 3 {
		t.Errorf("arrow sees %d rows in %d row groups, want 2500 in 3", fm.NumRows, rdr.NumRowGroups())
	}
	if fm.GetCreatedBy() != CreatedBy {
		t.Errorf("created_by = %q", fm.GetCreatedBy())
	}
	type want struct {
		phys aparquet.Type
		lt   string
	}
	wants := map[string]want{
		"id":              {aparquet.Types.ByteArray, "String"},
		"date":            {aparquet.Types.Int64, "Timestamp(UTC,MICROS)"},
		"updated_at":      {aparquet.Types.Int64, "Timestamp(UTC,MICROS)"},
		"date_local":      {aparquet.Types.Int32, "Date"},
		"amount":          {aparquet.Types.Int64, "Decimal(18,4)"},
		"balance":         {aparquet.Types.Int64, "Decimal(18,4)"},
		"conversion_rate": {aparquet.Types.Int64, "Decimal(18,10)"},
		"is_settled":      {aparquet.Types.Boolean, "None"},
		"sequence":        {aparquet.Types.Int64, "Int(64,signed)"},
	}
	for i := 0; i < fm.Schema.NumColumns(); i++ {
		col := fm.Schema.Column(i)
		if col.Name() != sch.Field(i).Name {
			t.Errorf("column %d is %q, want %q (Arrow order)", i, col.Name(), sch.Field(i).Name)
		}
		w, ok := wants[col.Name()]
		if !ok {
			continue
		}
		if col.PhysicalType() != w.phys {
			t.Errorf("%s: physical %v, want %v", col.Name(), col.PhysicalType(), w.phys)
		}
		if got := describeLogical(col.LogicalType()); got != w.lt {
			t.Errorf("%s: logical %s (%v), want %s", col.Name(), got, col.LogicalType(), w.lt)
		}
		if rep := col.SchemaNode().RepetitionType(); (rep == aparquet.Repetitions.Optional) != sch.Field(i).Nullable {
			t.Errorf("%s: repetition %v, nullable %v", col.Name(), rep, sch.Field(i).Nullable)
		}
	}
	for i := 0; i < fm.Schema.NumColumns(); i++ {
		cc, err := fm.RowGroup(0).ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		if cc.Compression() != acompress.Codecs.Zstd {
			t.Errorf("%s: compression %v, want zstd", sch.Field(i).Name, cc.Compression())
		}
		_, wantDict := sch.Field(i).Metadata.GetValue(FieldMetadataDictionary)
		if cc.HasDictionaryPage() != wantDict {
			t.Errorf("%s: dictionary page %v, want %v", sch.Field(i).Name, cc.HasDictionaryPage(), wantDict)
		}
		if set, err := cc.StatsSet(); err != nil || !set {
			t.Errorf("%s: no column chunk statistics (%v)", sch.Field(i).Name, err)
		}
		if want := slices.Contains(DefaultBloomFilterColumns, sch.Field(i).Name); (cc.BloomFilterOffset() > 0) != want {
			t.Errorf("%s: bloom filter offset %d, want a filter: %v", sch.Field(i).Name, cc.BloomFilterOffset(), want)
		}
	}
	if v := fm.KeyValueMetadata().FindValue("akahu_parquet.schema_version"); v == nil || *v != "1" {
		t.Errorf("schema version metadata missing: %v", v)
	}

	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatalf("pqarrow.ReadTable: %v", err)
	}
	defer tbl.Release()
	for i, f := range sch.Fields() {
		tf := tbl.Schema().Field(i)
		if tf.Name != f.Name || !arrow.TypeEqual(tf.Type, f.Type) || tf.Nullable != f.Nullable {
			t.Errorf("pqarrow field %d = %v, want %v", i, tf, f)
			continue
		}
		chunks := tbl.Column(i).Data().Chunks()
		g, err := array.Concatenate(chunks, mem)
		if err != nil {
			t.Fatal(err)
		}
		w := concat(t, mem, recs, i)
		if !array.Equal(g, w) {
			t.Errorf("pqarrow column %q differs:\n got %v\nwant %v", f.Name, trunc(g), trunc(w))
		}
		g.Release()
		w.Release()
	}
}

func describeLogical(lt aschema.LogicalType) string {
	switch l := lt.(type) {
	case *aschema.TimestampLogicalType:
		unit := map[aschema.TimeUnitType]string{aschema.TimeUnitMillis: "MILLIS", aschema.TimeUnitMicros: "MICROS", aschema.TimeUnitNanos: "NANOS"}[l.TimeUnit()]
		if l.IsAdjustedToUTC() {
			return "Timestamp(UTC," + unit + ")"
		}
		return "Timestamp(local," + unit + ")"
	case *aschema.DecimalLogicalType:
		return "Decimal(" + strconv.Itoa(int(l.Precision())) + "," + strconv.Itoa(int(l.Scale())) + ")"
	case *aschema.IntLogicalType:
		if l.IsSigned() {
			return "Int(" + strconv.Itoa(int(l.BitWidth())) + ",signed)"
		}
		return "Int(" + strconv.Itoa(int(l.BitWidth())) + ",unsigned)"
	case *aschema.DateLogicalType:
		return "Date"
	case *aschema.StringLogicalType:
		return "String"
	case aschema.NoLogicalType, *aschema.NoLogicalType, nil:
		return "None"
	}
	return lt.String()
}

// pqarrowFile writes recs with Arrow's own writer, the "other tool".
func pqarrowFile(t testing.TB, sch *arrow.Schema, recs []arrow.Record, rowGroup int64, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := pqarrow.NewFileWriter(sch, &buf, pqarrowProps(sch, rowGroup, level), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatalf("pqarrow writer: %v", err)
	}
	for _, r := range recs {
		if err := fw.WriteBuffered(r); err != nil {
			t.Fatalf("pqarrow write: %v", err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("pqarrow close: %v", err)
	}
	return buf.Bytes()
}

// pqarrowProps are Arrow writer settings equivalent to Write's defaults:
// zstd, the same row group size, dictionary only for hinted columns,
// statistics, decimals as integers, V1 pages.
func pqarrowProps(sch *arrow.Schema, rowGroup int64, level int) *aparquet.WriterProperties {
	opts := []aparquet.WriterProperty{
		aparquet.WithCompression(acompress.Codecs.Zstd),
		aparquet.WithCompressionLevel(level),
		aparquet.WithMaxRowGroupLength(rowGroup),
		aparquet.WithDictionaryDefault(false),
		aparquet.WithStats(true),
		aparquet.WithStoreDecimalAsInteger(true),
		aparquet.WithDataPageVersion(aparquet.DataPageV1),
	}
	for _, f := range sch.Fields() {
		if v, _ := f.Metadata.GetValue(FieldMetadataDictionary); v == "true" {
			opts = append(opts, aparquet.WithDictionaryFor(f.Name, true))
		}
	}
	return aparquet.NewWriterProperties(opts...)
}

func TestReadFileWrittenByPqarrow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 1500), testRecord(mem, 1500, 700)}
	defer releaseAll(recs)
	data := pqarrowFile(t, sch, recs, 1000, 3)

	gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
	if err != nil {
		t.Fatalf("Read of a pqarrow file: %v", err)
	}
	defer releaseAll(got)
	if len(got) != 3 {
		t.Errorf("%d records, want one per row group (3)", len(got))
	}
	for i, f := range sch.Fields() {
		g := gotSch.Field(i)
		if g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) || g.Nullable != f.Nullable {
			t.Errorf("field %d = %v, want %v", i, g, f)
		}
	}
	if _, ok := gotSch.Metadata().GetValue(MetadataKeyArrowSchema); ok {
		t.Errorf("ARROW:schema leaked into the schema metadata")
	}
	if v, _ := gotSch.Metadata().GetValue("akahu_parquet.schema_version"); v != "1" {
		t.Errorf("schema metadata lost: %v", gotSch.Metadata())
	}
	assertSameRows(t, mem, recs, sch, got, gotSch)

	md, err := ReadMetadata(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if md.Rows != 2200 || md.RowGroups != 3 {
		t.Errorf("ReadMetadata = %d rows, %d groups", md.Rows, md.RowGroups)
	}
}

func TestRowGroups(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 10), testRecord(mem, 10, 0), testRecord(mem, 10, 3), testRecord(mem, 13, 20)}
	defer releaseAll(recs)
	// A zero-offset slice and an offset slice exercise arrays whose data
	// does not start at the buffer's beginning.
	sliced := recs[3].NewSlice(5, 20)
	defer sliced.Release()
	recs = append(recs, sliced)

	for _, tc := range []struct {
		rows       int
		wantGroups []int64
	}{
		{7, []int64{7, 7, 7, 7, 7, 7, 6}},
		{1, nil}, // 48 groups of one row
		{48, []int64{48}},
		{1000, []int64{48}},
	} {
		data, info := writeBytes(t, sch, recs, WithRowGroupRows(tc.rows))
		want := tc.wantGroups
		if want == nil {
			for i := 0; i < 48; i++ {
				want = append(want, 1)
			}
		}
		if info.Rows != 48 || info.RowGroups != len(want) {
			t.Errorf("rows=%d: FileInfo %+v, want 48 rows in %d groups", tc.rows, info, len(want))
		}
		gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int64
		for _, r := range got {
			sizes = append(sizes, r.NumRows())
		}
		if !equalInts(sizes, want) {
			t.Errorf("rows=%d: record sizes %v, want %v", tc.rows, sizes, want)
		}
		assertSameRows(t, mem, recs, sch, got, gotSch)
		releaseAll(got)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProjection(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 3000)}
	defer releaseAll(recs)
	data, _ := writeBytes(t, sch, recs, WithRowGroupRows(1024))

	tests := []struct {
		name    string
		columns []string
		want    []string
		err     error
	}{
		{"two columns in the asked order", []string{"amount", "id"}, []string{"amount", "id"}, nil},
		{"duplicates ignored", []string{"date_local", "date_local", "balance"}, []string{"date_local", "balance"}, nil},
		{"dictionary and bool", []string{"type", "is_transfer"}, []string{"type", "is_transfer"}, nil},
		{"unknown column", []string{"id", "nope"}, nil, ErrUnknownColumn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem, Columns(tc.columns...))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "nope") {
					t.Fatalf("err = %v, want %v naming the column", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer releaseAll(got)
			var names []string
			for _, f := range gotSch.Fields() {
				names = append(names, f.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("columns %v, want %v", names, tc.want)
			}
			for _, r := range got {
				if int(r.NumCols()) != len(tc.want) {
					t.Fatalf("record has %d columns", r.NumCols())
				}
			}
			assertSameRows(t, mem, recs, sch, got, gotSch)
		})
	}
}

// TestProjectionSkipsOtherColumns proves only projected columns are
// decoded: a file whose other column chunk is corrupt still reads.
func TestProjectionSkipsOtherColumns(t *testing.T) {
	mem := memory.NewGoAllocator()
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64},
		{Name: "b", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(mem, sch)
	for i := 0; i < 5000; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.Int64Builder).Append(int64(i * 3))
	}
	rec := b.NewRecord()
	b.Release()
	defer rec.Release()
	data, _ := writeBytes(t, sch, []arrow.Record{rec}, WithCompression(nil), WithBloomFilters())

	f, err := parquetgo.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	cb := f.Metadata().RowGroups[0].Columns[1].MetaData
	for i := cb.DataPageOffset + 40; i < cb.DataPageOffset+cb.TotalCompressedSize; i++ {
		data[i] = 0xff // scribble over column b's page data, header left intact
	}
	if _, _, err := Read(bytes.NewReader(data), int64(len(data)), mem); err == nil {
		t.Log("reading every column of the damaged file did not fail (damage undetected without CRC)")
	}
	gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem, Columns("a"))
	if err != nil {
		t.Fatalf("projection onto the intact column failed: %v", err)
	}
	defer releaseAll(got)
	assertSameRows(t, mem, []arrow.Record{rec}, sch, got, gotSch)
}

func TestZeroRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	empty := testRecord(mem, 0, 0)
	defer empty.Release()
	for _, recs := range [][]arrow.Record{nil, {empty}} {
		data, info := writeBytes(t, sch, recs)
		if info != (FileInfo{}) {
			t.Errorf("FileInfo = %+v, want zero", info)
		}
		gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("%d records from an empty file", len(got))
		}
		if !gotSch.Equal(sch) || !gotSch.Metadata().Equal(sch.Metadata()) {
			t.Errorf("schema of an empty file:\n got %v\nwant %v", gotSch, sch)
		}
		tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{}, mem)
		if err != nil {
			t.Fatalf("pqarrow cannot read the empty file: %v", err)
		}
		if tbl.NumRows() != 0 || tbl.NumCols() != int64(sch.NumFields()) {
			t.Errorf("pqarrow: %d rows %d cols", tbl.NumRows(), tbl.NumCols())
		}
		tbl.Release()
	}
}

func TestWriteErrors(t *testing.T) {
	mem := memory.NewGoAllocator()
	one := func(f arrow.Field) *arrow.Schema { return arrow.NewSchema([]arrow.Field{f}, nil) }
	tests := []struct {
		name   string
		sch    *arrow.Schema
		recs   func() []arrow.Record
		err    error
		column string
	}{
		{"float64", one(arrow.Field{Name: "rate_f", Type: arrow.PrimitiveTypes.Float64}), nil, ErrUnsupportedType, "rate_f"},
		{"int32", one(arrow.Field{Name: "n32", Type: arrow.PrimitiveTypes.Int32}), nil, ErrUnsupportedType, "n32"},
		{"large string", one(arrow.Field{Name: "big", Type: arrow.BinaryTypes.LargeString}), nil, ErrUnsupportedType, "big"},
		{"list", one(arrow.Field{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)}), nil, ErrUnsupportedType, "tags"},
		{"timestamp ns", one(arrow.Field{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}}), nil, ErrUnsupportedType, "ts_ns"},
		{"timestamp ms", one(arrow.Field{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}}), nil, ErrUnsupportedType, "ts_ms"},
		{"timestamp local zone", one(arrow.Field{Name: "ts_akl", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Pacific/Auckland"}}), nil, ErrUnsupportedType, "ts_akl"},
		{"timestamp no zone", one(arrow.Field{Name: "ts_naive", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}), nil, ErrUnsupportedType, "ts_naive"},
		{"decimal precision 19", one(arrow.Field{Name: "wide", Type: &arrow.Decimal128Type{Precision: 19, Scale: 4}}), nil, ErrUnsupportedType, "wide"},
		{"decimal precision 38", one(arrow.Field{Name: "wider", Type: &arrow.Decimal128Type{Precision: 38, Scale: 10}}), nil, ErrUnsupportedType, "wider"},
		{"null in required column", one(arrow.Field{Name: "req", Type: arrow.PrimitiveTypes.Int64}), func() []arrow.Record {
			b := array.NewInt64Builder(mem)
			b.Append(1)
			b.AppendNull()
			a := b.NewArray()
			return []arrow.Record{array.NewRecord(one(arrow.Field{Name: "req", Type: arrow.PrimitiveTypes.Int64}), []arrow.Array{a}, 2)}
		}, ErrInvalidValue, "req"},
		{"decimal over precision", one(arrow.Field{Name: "amt", Type: &arrow.Decimal128Type{Precision: 18, Scale: 4}}), func() []arrow.Record {
			dt := &arrow.Decimal128Type{Precision: 18, Scale: 4}
			b := array.NewDecimal128Builder(mem, dt)
			b.Append(decimal128.FromI64(maxDec18 + 1))
			return []arrow.Record{array.NewRecord(one(arrow.Field{Name: "amt", Type: dt}), []arrow.Array{b.NewArray()}, 1)}
		}, ErrInvalidValue, "amt"},
		{"decimal beyond int64", one(arrow.Field{Name: "amt", Type: &arrow.Decimal128Type{Precision: 18, Scale: 4}}), func() []arrow.Record {
			dt := &arrow.Decimal128Type{Precision: 18, Scale: 4}
			b := array.NewDecimal128Builder(mem, dt)
			b.Append(decimal128.New(1, 5))
			return []arrow.Record{array.NewRecord(one(arrow.Field{Name: "amt", Type: dt}), []arrow.Array{b.NewArray()}, 1)}
		}, ErrInvalidValue, "amt"},
		{"decimal precision 4", one(arrow.Field{Name: "small", Type: &arrow.Decimal128Type{Precision: 4, Scale: 2}}), func() []arrow.Record {
			dt := &arrow.Decimal128Type{Precision: 4, Scale: 2}
			b := array.NewDecimal128Builder(mem, dt)
			b.Append(decimal128.FromI64(9999))
			b.Append(decimal128.FromI64(-10000))
			return []arrow.Record{array.NewRecord(one(arrow.Field{Name: "small", Type: dt}), []arrow.Array{b.NewArray()}, 2)}
		}, ErrInvalidValue, "small"},
		{"record of another schema", one(arrow.Field{Name: "id", Type: arrow.BinaryTypes.String}), func() []arrow.Record {
			b := array.NewInt64Builder(mem)
			b.Append(1)
			return []arrow.Record{array.NewRecord(one(arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64}), []arrow.Array{b.NewArray()}, 1)}
		}, ErrSchemaMismatch, "id"},
		{"duplicate column", arrow.NewSchema([]arrow.Field{{Name: "dup", Type: arrow.PrimitiveTypes.Int64}, {Name: "dup", Type: arrow.PrimitiveTypes.Int64}}, nil), nil, ErrUnsupportedType, "dup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var recs []arrow.Record
			if tc.recs != nil {
				recs = tc.recs()
				defer releaseAll(recs)
			}
			var buf bytes.Buffer
			_, err := Write(&buf, tc.sch, recs)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !strings.Contains(err.Error(), `"`+tc.column+`"`) {
				t.Errorf("error %q does not name column %q", err, tc.column)
			}
		})
	}
}

// failingWriter fails after n bytes, like a full disk.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteReportsWriterErrors(t *testing.T) {
	mem := memory.NewGoAllocator()
	recs := []arrow.Record{testRecord(mem, 0, 5000)}
	defer releaseAll(recs)
	full, _ := writeBytes(t, testSchema(), recs, WithRowGroupRows(1000))
	for _, n := range []int{0, 3, 100, len(full) / 2, len(full) - 1} {
		_, err := Write(&failingWriter{n: n}, testSchema(), recs, WithRowGroupRows(1000))
		if !errors.Is(err, errDiskFull) {
			t.Errorf("writer failing after %d of %d bytes: err = %v, want disk full", n, len(full), err)
		}
	}
}

func TestReadMetadata(t *testing.T) {
	mem := memory.NewGoAllocator()
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 2000)}
	defer releaseAll(recs)
	data, _ := writeBytes(t, sch, recs, WithRowGroupRows(600), WithKeyValue("akahu_parquet.run_id", "run-7"))
	md, err := ReadMetadata(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if md.Rows != 2000 || md.RowGroups != 4 {
		t.Errorf("rows %d groups %d", md.Rows, md.RowGroups)
	}
	for k, v := range map[string]string{"akahu_parquet.run_id": "run-7", "akahu_parquet.schema_version": "1", "akahu_parquet.table": "transactions"} {
		if md.KeyValue[k] != v {
			t.Errorf("key %q = %q, want %q", k, md.KeyValue[k], v)
		}
	}
	if len(md.Columns) != sch.NumFields() {
		t.Fatalf("%d columns", len(md.Columns))
	}
	byName := map[string]ColumnMetadata{}
	for _, c := range md.Columns {
		byName[c.Name] = c
	}
	check := func(name string, min, max any, nulls int64) {
		t.Helper()
		c := byName[name]
		if c.Min != min || c.Max != max || c.Nulls != nulls {
			t.Errorf("%s: min %v max %v nulls %d, want %v %v %d", name, c.Min, c.Max, c.Nulls, min, max, nulls)
		}
	}
	check("id", "trans_000000000000", "trans_000000001999", 0)
	check("amount", "-99999999999999.9999", "99999999999999.9999", 0)
	check("date", time.Unix(-86400*365, 0).UTC(), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	check("date_local", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	check("is_settled", false, true, 0)
	check("sequence", int64(-1<<40), int64(1999-1<<40), 0)
	check("updated_at", byName["updated_at"].Min, byName["updated_at"].Max, 400)
	if !byName["balance"].Nullable || byName["amount"].Nullable {
		t.Errorf("nullability wrong: %+v %+v", byName["balance"], byName["amount"])
	}
}

// TestGoldenSchema pins the Parquet schema of the test table as parquet-go
// prints it. Run with -update after an intended change.
func TestGoldenSchema(t *testing.T) {
	mem := memory.NewGoAllocator()
	recs := []arrow.Record{testRecord(mem, 0, 10)}
	defer releaseAll(recs)
	data, _ := writeBytes(t, testSchema(), recs)
	f, err := parquetgo.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got := f.Schema().String() + "\n"
	golden := filepath.Join("testdata", "transactions_schema.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("schema differs from %s (run with -update if intended):\n--- got\n%s--- want\n%s", golden, got, want)
	}
	var _ = format.Plain
}

func TestReadInvalid(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	recs := []arrow.Record{testRecord(mem, 0, 300)}
	valid, _ := writeBytes(t, testSchema(), recs)
	releaseAll(recs)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic only", []byte("PAR1")},
		{"text", []byte("id,amount\n1,2\n")},
		{"truncated", valid[:len(valid)/2]},
		{"no footer magic", valid[:len(valid)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)), mem)
			if !errors.Is(err, ErrInvalidFile) {
				t.Errorf("Read err = %v, want ErrInvalidFile", err)
			}
			if _, err := ReadMetadata(bytes.NewReader(tc.data), int64(len(tc.data))); !errors.Is(err, ErrInvalidFile) {
				t.Errorf("ReadMetadata err = %v, want ErrInvalidFile", err)
			}
		})
	}
}

func TestBloomFilterOnID(t *testing.T) {
	mem := memory.NewGoAllocator()
	recs := []arrow.Record{testRecord(mem, 0, 500)}
	defer releaseAll(recs)
	data, _ := writeBytes(t, testSchema(), recs, WithBloomFilters("id", "no_such_column"))
	f, err := parquetgo.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	id := f.RowGroups()[0].ColumnChunks()[0]
	bf := id.BloomFilter()
	if bf == nil {
		t.Fatal("no bloom filter on id")
	}
	for _, v := range []string{"trans_000000000000", "trans_000000000499"} {
		if ok, err := bf.Check(parquetgo.ValueOf(v)); err != nil || !ok {
			t.Errorf("bloom filter misses %s (%v)", v, err)
		}
	}
	if other := f.RowGroups()[0].ColumnChunks()[1].BloomFilter(); other != nil {
		t.Errorf("bloom filter on user_id too")
	}
	// Data still round-trips.
	gotSch, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(got)
	assertSameRows(t, mem, recs, testSchema(), got, gotSch)
}

// TestDefaultLayoutForLookups checks what lets a reader skip most of a file on a
// lookup by id, user or account, with no options given: a file larger than
// DefaultRowGroupRows is split into row groups of that size, and every row group
// carries a bloom filter on id, user_id and account_id (and on no other column)
// that admits the group's own values and rejects values it does not hold. Writing
// the same records again gives the same bytes.
func TestDefaultLayoutForLookups(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	// 40k rows: a month partition of a few hundred accounts.
	const n = 40_000
	recs := []arrow.Record{testRecord(mem, 0, n/2), testRecord(mem, n/2, n-n/2)}
	defer releaseAll(recs)
	data, info := writeBytes(t, sch, recs)
	if want := (n + DefaultRowGroupRows - 1) / DefaultRowGroupRows; info.Rows != n || info.RowGroups != want || want < 3 {
		t.Fatalf("FileInfo %+v, want %d rows in at least 3 row groups of %d rows", info, n, DefaultRowGroupRows)
	}
	if again, _ := writeBytes(t, sch, recs); !bytes.Equal(again, data) {
		t.Error("writing the same records twice gave different bytes")
	}
	f, err := parquetgo.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// testRecord: row r has id trans_%012d, user_%d (r%7) and acc_%d (r%23).
	ids := func(lo, hi, step int) []string {
		var out []string
		for r := lo; r < hi; r += step {
			out = append(out, fmt.Sprintf("trans_%012d", r))
		}
		return out
	}
	for g, rg := range f.RowGroups() {
		lo, hi := g*DefaultRowGroupRows, min((g+1)*DefaultRowGroupRows, n)
		if got := rg.NumRows(); got != int64(hi-lo) {
			t.Errorf("row group %d: %d rows, want %d", g, got, hi-lo)
		}
		// ids outside the group: every other group's, and ids never written
		absent := append(ids(0, lo, 97), ids(hi, n+5000, 97)...)
		for _, tc := range []struct {
			col            int
			present, other []string
		}{
			{0, ids(lo, hi, 97), absent},
			{1, []string{"user_0", "user_6"}, []string{"user_7", "user_absent", "acc_0"}},
			{2, []string{"acc_0", "acc_22"}, []string{"acc_23", "acc_absent", "user_0"}},
		} {
			name := sch.Field(tc.col).Name
			bf := rg.ColumnChunks()[tc.col].BloomFilter()
			if bf == nil {
				t.Errorf("row group %d: no bloom filter on %s", g, name)
				continue
			}
			for _, v := range tc.present {
				if ok, err := bf.Check(parquetgo.ValueOf(v)); err != nil || !ok {
					t.Errorf("row group %d: %s bloom filter rejects %s, which the group holds (%v)", g, name, v, err)
				}
			}
			admitted := 0
			for _, v := range tc.other {
				if ok, err := bf.Check(parquetgo.ValueOf(v)); err != nil {
					t.Errorf("row group %d: %s: %v", g, name, err)
				} else if ok {
					admitted++
				}
			}
			// ~1% false positives at DefaultBloomFilterBitsPerValue; 5% leaves room.
			if admitted*20 > len(tc.other) {
				t.Errorf("row group %d: %s bloom filter admits %d of %d values the group does not hold", g, name, admitted, len(tc.other))
			}
		}
		for c, cc := range rg.ColumnChunks() {
			if c > 2 && cc.BloomFilter() != nil {
				t.Errorf("row group %d: bloom filter on %s, not a lookup key", g, sch.Field(c).Name)
			}
		}
	}
}

// TestReadHoldsNoSpareCapacity: a decoded column's buffers are about the size of its
// values. A builder grows string bytes by doubling, and a record keeps its builder's
// buffers: a transactions partition read whole held a third more than its bytes.
func TestReadHoldsNoSpareCapacity(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sch := testSchema()
	recs := []arrow.Record{testRecord(mem, 0, 3000)}
	defer releaseAll(recs)
	data, _ := writeBytes(t, sch, recs)
	_, got, err := Read(bytes.NewReader(data), int64(len(data)), mem)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(got)
	var used, held int
	for _, rec := range got {
		for i, col := range rec.Columns() {
			for k, b := range col.Data().Buffers() {
				if b == nil {
					continue
				}
				used, held = used+b.Len(), held+b.Cap()
				if b.Cap() > b.Len()+b.Len()/8+64 {
					t.Errorf("column %s, buffer %d: %d bytes held for %d", sch.Field(i).Name, k, b.Cap(), b.Len())
				}
			}
		}
	}
	if held > used+used/16 {
		t.Errorf("decoded buffers hold %d bytes for %d", held, used)
	}
	assertSameRows(t, mem, recs, sch, got, sch)
}
