package parquet

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	parquetgo "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// MetadataKeyArrowSchema is the key under which Arrow's own Parquet writer
// stores a serialised Arrow schema. Read drops it from the returned schema
// metadata, since the schema it describes is rebuilt from the Parquet types.
const MetadataKeyArrowSchema = "ARROW:schema"

// readChunk is the number of values read from a page at once.
const readChunk = 1024

// maxReserveRows caps how many rows a column builder reserves up front, so a
// corrupt footer claiming billions of rows cannot force a huge allocation.
const maxReserveRows = 64 * 1024

// fileColumn is a column of a file being read: its leaf index and mapping.
type fileColumn struct {
	leaf int
	column
	field arrow.Field
}

// Read decodes a Parquet file into Arrow records, one record per row group
// (row groups without rows are skipped), allocated from mem. The caller
// releases the records.
//
// Parquet types map back to the Arrow types Write takes: STRING to utf8,
// TIMESTAMP(isAdjustedToUTC=true, MICROS) to timestamp[us, tz=UTC], DATE to
// date32, DECIMAL(p, s) over INT32 or INT64 to decimal128(p, s), BOOLEAN to
// bool and INT64 to int64; MILLIS and NANOS timestamps keep their unit, and
// timestamps not adjusted to UTC have no time zone. Optional columns become
// nullable fields. The file's key-value metadata becomes the schema
// metadata (sorted by key) and field metadata stored by Write is restored,
// so a file read and written again with the returned schema is
// byte-identical.
//
// Files written by other tools read as well, as long as their columns are
// flat and of the types above; other columns fail with ErrUnsupportedType
// unless a Columns projection leaves them out. Malformed input fails with
// ErrInvalidFile and never panics.
func Read(r io.ReaderAt, size int64, mem memory.Allocator, opts ...ReadOption) (sch *arrow.Schema, recs []arrow.Record, err error) {
	return read(r, nil, size, mem, opts)
}

// read is Read; rr, when not nil, is r read by range (ReadRanged): the header's
// magic bytes are not read, and each row group's selected column chunks are
// loaded into rr before they are decoded.
func read(r io.ReaderAt, rr *rangeReader, size int64, mem memory.Allocator, opts []ReadOption) (sch *arrow.Schema, recs []arrow.Record, err error) {
	var cfg readConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parquet: decoding failed: %v: %w", p, ErrInvalidFile)
		}
		if err != nil {
			for _, rec := range recs {
				rec.Release()
			}
			sch, recs = nil, nil
		}
	}()

	f, err := openFile(r, size, rr == nil)
	if err != nil {
		return nil, nil, err
	}
	cols, err := fileColumns(f, cfg.columns)
	if err != nil {
		return nil, nil, err
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = c.field
	}
	md := schemaMetadata(f)
	sch = arrow.NewSchema(fields, &md)
	if cfg.fileSchema != nil {
		all, err := fileColumns(f, nil)
		if err != nil {
			return nil, nil, err
		}
		allFields := make([]arrow.Field, len(all))
		for i, c := range all {
			allFields[i] = c.field
		}
		*cfg.fileSchema = arrow.NewSchema(allFields, &md)
	}

	dec := decoder{buf: make([]parquetgo.Value, readChunk)}
	for gi, rg := range f.RowGroups() {
		if rg.NumRows() <= 0 {
			continue
		}
		if rr != nil {
			if err := rr.load(chunkRanges(f, gi, cols, size)); err != nil {
				return nil, recs, fmt.Errorf("parquet: row group %d: %w", gi, err)
			}
		}
		rec, err := dec.readRowGroup(r, size, mem, f, gi, rg, sch, cols)
		if err != nil {
			// recs, not nil: the deferred cleanup releases what was read
			return nil, recs, fmt.Errorf("parquet: row group %d: %w", gi, err)
		}
		recs = append(recs, rec)
	}
	return sch, recs, nil
}

// readRowGroup decodes the selected columns of one row group into a record.
// The deferred release also runs when parquet-go panics on corrupt input.
func (d *decoder) readRowGroup(r io.ReaderAt, size int64, mem memory.Allocator, f *parquetgo.File, gi int, rg parquetgo.RowGroup, sch *arrow.Schema, cols []fileColumn) (arrow.Record, error) {
	n := rg.NumRows()
	chunks := rg.ColumnChunks()
	arrs := make([]arrow.Array, 0, len(cols))
	defer func() {
		for _, a := range arrs {
			a.Release()
		}
	}()
	for _, c := range cols {
		if c.leaf >= len(chunks) || gi >= len(f.Metadata().RowGroups) || c.leaf >= len(f.Metadata().RowGroups[gi].Columns) {
			return nil, fmt.Errorf("column %q: missing chunk: %w", c.name, ErrInvalidFile)
		}
		if err := checkChunk(r, size, &f.Metadata().RowGroups[gi].Columns[c.leaf].MetaData, n); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		a, err := d.readColumn(mem, chunks[c.leaf], &c, n)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		arrs = append(arrs, a)
	}
	return array.NewRecord(sch, arrs, n), nil
}

// openFile opens the footer only; page indexes and bloom filters are not
// needed to decode the data. checkHead reads and checks the magic bytes at the
// start of the file too (a ranged read leaves them out: they cost a request and
// the footer's are checked).
func openFile(r io.ReaderAt, size int64, checkHead bool) (*parquetgo.File, error) {
	if r == nil || size < 0 {
		return nil, fmt.Errorf("parquet: no input: %w", ErrInvalidFile)
	}
	// parquet-go allocates the footer length the file claims before reading
	// it; check the framing first so a corrupt length cannot ask for
	// gigabytes. Encrypted files ("PARE") are not supported.
	const magic = "PAR1"
	if size < int64(2*len(magic)+4) {
		return nil, fmt.Errorf("parquet: %d bytes is too short for a parquet file: %w", size, ErrInvalidFile)
	}
	head := [4]byte{'P', 'A', 'R', '1'}
	var tail [8]byte
	if checkHead {
		if _, err := r.ReadAt(head[:], 0); err != nil {
			return nil, fmt.Errorf("parquet: reading header: %v: %w", err, ErrInvalidFile)
		}
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parquet: reading footer: %v: %w", err, ErrInvalidFile)
	}
	if string(head[:]) != magic || string(tail[4:]) != magic {
		return nil, fmt.Errorf("parquet: bad magic bytes %q/%q: %w", head[:], tail[4:], ErrInvalidFile)
	}
	footer := int64(binary.LittleEndian.Uint32(tail[:4]))
	if footer > size-12 {
		return nil, fmt.Errorf("parquet: footer of %d bytes in a %d-byte file: %w", footer, size, ErrInvalidFile)
	}
	if err := checkFooter(r, size, footer); err != nil {
		return nil, fmt.Errorf("parquet: %v: %w", err, ErrInvalidFile)
	}
	f, err := parquetgo.OpenFile(r, size, parquetgo.SkipPageIndex(true), parquetgo.SkipBloomFilters(true),
		parquetgo.SkipMagicBytes(!checkHead), parquetgo.OptimisticRead(false))
	if err != nil {
		return nil, fmt.Errorf("parquet: opening file: %v: %w", err, ErrInvalidFile)
	}
	return f, nil
}

// fileColumns maps the file's flat schema to Arrow fields, restricted to
// the projection when one is given.
func fileColumns(f *parquetgo.File, projection []string) ([]fileColumn, error) {
	elems := f.Metadata().Schema
	if len(elems) == 0 {
		return nil, fmt.Errorf("parquet: empty schema: %w", ErrInvalidFile)
	}
	fieldMD := storedFieldMetadata(f)
	byName := make(map[string]int, len(elems)-1)
	var leaves []format.SchemaElement
	for i := 1; i < len(elems); i++ {
		e := elems[i]
		if nc, ok := e.NumChildren.Get(); ok && nc > 0 {
			return nil, fmt.Errorf("parquet: column %q: nested groups: %w", e.Name, ErrUnsupportedType)
		}
		if _, dup := byName[e.Name]; !dup {
			byName[e.Name] = len(leaves)
		}
		leaves = append(leaves, e)
	}
	if nc, _ := elems[0].NumChildren.Get(); int(nc) != len(leaves) {
		return nil, fmt.Errorf("parquet: root has %d children for %d columns: %w", nc, len(leaves), ErrInvalidFile)
	}
	if len(f.RowGroups()) > 0 && len(f.RowGroups()[0].ColumnChunks()) != len(leaves) {
		return nil, fmt.Errorf("parquet: %d column chunks for %d columns: %w", len(f.RowGroups()[0].ColumnChunks()), len(leaves), ErrInvalidFile)
	}
	var selected []int
	if projection == nil {
		for i := range leaves {
			selected = append(selected, i)
		}
	} else {
		seen := make(map[string]bool, len(projection))
		for _, name := range projection {
			if seen[name] {
				continue
			}
			seen[name] = true
			i, ok := byName[name]
			if !ok {
				return nil, fmt.Errorf("parquet: column %q: %w", name, ErrUnknownColumn)
			}
			selected = append(selected, i)
		}
	}
	cols := make([]fileColumn, 0, len(selected))
	for _, i := range selected {
		c, err := columnOf(leaves[i])
		if err != nil {
			return nil, fmt.Errorf("parquet: %w", err)
		}
		fc := fileColumn{leaf: i, column: c}
		fc.field = arrow.Field{Name: c.name, Type: c.arrowType, Nullable: c.nullable}
		if kv, ok := fieldMD[c.name]; ok {
			keys := make([]string, 0, len(kv))
			for k := range kv {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			vals := make([]string, len(keys))
			for j, k := range keys {
				vals[j] = kv[k]
			}
			fc.field.Metadata = arrow.NewMetadata(keys, vals)
		}
		cols = append(cols, fc)
	}
	return cols, nil
}

// columnOf maps one flat Parquet leaf to its Arrow type.
func columnOf(e format.SchemaElement) (column, error) {
	c := column{name: e.Name}
	rep, _ := e.RepetitionType.Get()
	switch rep {
	case format.Required:
	case format.Optional:
		c.nullable = true
	default:
		return c, fmt.Errorf("column %q: repeated: %w", e.Name, ErrUnsupportedType)
	}
	phys, ok := e.Type.Get()
	if !ok {
		return c, fmt.Errorf("column %q: no physical type: %w", e.Name, ErrInvalidFile)
	}
	lt := e.LogicalType.Value
	ct, hasCT := e.ConvertedType.Get()
	unsupported := func() (column, error) {
		desc := phys.String()
		if lt != nil {
			desc += " " + lt.String()
		} else if hasCT {
			desc += fmt.Sprintf(" converted type %d", ct)
		}
		return c, fmt.Errorf("column %q: %s: %w", e.Name, desc, ErrUnsupportedType)
	}

	// DECIMAL, from the logical type or the legacy converted type.
	var dec *format.DecimalType
	if d, ok := lt.(*format.DecimalType); ok {
		dec = d
	} else if lt == nil && hasCT && ct == deprecated.Decimal {
		s, _ := e.Scale.Get()
		p, _ := e.Precision.Get()
		dec = &format.DecimalType{Scale: s, Precision: p}
	}
	if dec != nil {
		maxP := int32(maxInt64DecimalPrecision)
		if phys == format.Int32 {
			maxP = maxInt32DecimalPrecision
		} else if phys != format.Int64 {
			return unsupported()
		}
		if dec.Precision < 1 || dec.Precision > maxP || dec.Scale < 0 || dec.Scale > dec.Precision {
			return c, fmt.Errorf("column %q: %s over %s: %w", e.Name, dec, phys, ErrUnsupportedType)
		}
		c.kind = kindDecimal
		c.int32Physical = phys == format.Int32
		c.decimal = &arrow.Decimal128Type{Precision: dec.Precision, Scale: dec.Scale}
		c.arrowType = c.decimal
		return c, nil
	}

	switch phys {
	case format.ByteArray:
		switch lt.(type) {
		case *format.StringType, *format.EnumType, *format.JsonType:
		case nil:
			if !hasCT || (ct != deprecated.UTF8 && ct != deprecated.Enum && ct != deprecated.Json) {
				return unsupported()
			}
		default:
			return unsupported()
		}
		c.kind, c.arrowType = kindString, arrow.BinaryTypes.String
	case format.Int64:
		var unit arrow.TimeUnit
		utc := true
		switch t := lt.(type) {
		case nil:
			switch {
			case !hasCT || ct == deprecated.Int64:
				c.kind, c.arrowType = kindInt64, arrow.PrimitiveTypes.Int64
				return c, nil
			case ct == deprecated.TimestampMicros:
				unit = arrow.Microsecond
			case ct == deprecated.TimestampMillis:
				unit = arrow.Millisecond
			default:
				return unsupported()
			}
		case *format.IntType:
			if t.BitWidth != 64 || !t.IsSigned {
				return unsupported()
			}
			c.kind, c.arrowType = kindInt64, arrow.PrimitiveTypes.Int64
			return c, nil
		case *format.TimestampType:
			utc = t.IsAdjustedToUTC
			switch t.Unit.Value.(type) {
			case *format.MilliSeconds:
				unit = arrow.Millisecond
			case *format.MicroSeconds:
				unit = arrow.Microsecond
			case *format.NanoSeconds:
				unit = arrow.Nanosecond
			default:
				return unsupported()
			}
		default:
			return unsupported()
		}
		tt := &arrow.TimestampType{Unit: unit}
		if utc {
			tt.TimeZone = "UTC"
		}
		c.kind, c.arrowType = kindTimestamp, tt
	case format.Int32:
		_, isDate := lt.(*format.DateType)
		if !isDate && !(lt == nil && hasCT && ct == deprecated.Date) {
			return unsupported()
		}
		c.kind, c.arrowType = kindDate, arrow.FixedWidthTypes.Date32
	case format.Boolean:
		if lt != nil {
			return unsupported()
		}
		c.kind, c.arrowType = kindBool, arrow.FixedWidthTypes.Boolean
	default:
		return unsupported()
	}
	return c, nil
}

// storedFieldMetadata decodes the field metadata Write stored, if any.
func storedFieldMetadata(f *parquetgo.File) map[string]map[string]string {
	v, ok := f.Lookup(MetadataKeyFieldMetadata)
	if !ok {
		return nil
	}
	var m map[string]map[string]string
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil // foreign or damaged: the data is still readable
	}
	return m
}

// schemaMetadata is the file's key-value metadata minus the keys that
// describe the schema itself, sorted by key.
func schemaMetadata(f *parquetgo.File) arrow.Metadata {
	kvs := f.Metadata().KeyValueMetadata
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if kv.Key == MetadataKeyFieldMetadata || kv.Key == MetadataKeyArrowSchema {
			continue
		}
		m[kv.Key] = kv.Value
	}
	if len(m) == 0 {
		return arrow.Metadata{}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
	}
	return arrow.NewMetadata(keys, vals)
}

// decoder reads column chunks into Arrow arrays.
type decoder struct {
	buf []parquetgo.Value
}

// readColumn decodes one column chunk of numRows rows.
func (d *decoder) readColumn(mem memory.Allocator, chunk parquetgo.ColumnChunk, c *fileColumn, numRows int64) (arr arrow.Array, err error) {
	b := array.NewBuilder(mem, c.arrowType)
	defer b.Release()
	b.Reserve(int(min(numRows, maxReserveRows)))

	pages := chunk.Pages()
	defer func() {
		if cerr := pages.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing pages: %v: %w", cerr, ErrInvalidFile)
		}
	}()
	var got int64
	for {
		page, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading page: %v: %w", err, ErrInvalidFile)
		}
		n, err := d.appendPage(b, page, c, numRows-got)
		parquetgo.Release(page)
		got += n
		if err != nil {
			return nil, err
		}
	}
	if got != numRows {
		return nil, fmt.Errorf("%d values for %d rows: %w", got, numRows, ErrInvalidFile)
	}
	return exactBuffers(mem, b.NewArray()), nil
}

// exactBuffers returns arr with every buffer no larger than its bytes: a builder
// grows a string column's bytes by doubling, and a decoded transactions partition
// held a third more memory than its values (2.0 MB for 1.5 MB). A buffer with more
// than an eighth to spare is copied and arr released (so one column's bytes are
// held twice for a moment); the other buffers are shared.
func exactBuffers(mem memory.Allocator, arr arrow.Array) arrow.Array {
	d := arr.Data()
	if len(d.Children()) > 0 || d.DataType().ID() == arrow.DICTIONARY {
		return arr
	}
	bufs := slices.Clone(d.Buffers())
	copied := false
	for i, b := range bufs {
		if b == nil || b.Cap() <= b.Len()+b.Len()/8+64 {
			continue
		}
		nb := memory.NewResizableBuffer(mem)
		nb.Resize(b.Len())
		copy(nb.Bytes(), b.Bytes())
		bufs[i] = nb
		copied = true
		defer nb.Release()
	}
	if !copied {
		return arr
	}
	nd := array.NewData(d.DataType(), d.Len(), bufs, nil, d.NullN(), d.Offset())
	defer nd.Release()
	arr.Release()
	return array.MakeFromData(nd)
}

// appendPage appends the values of page to b, refusing more than room.
func (d *decoder) appendPage(b array.Builder, page parquetgo.Page, c *fileColumn, room int64) (int64, error) {
	vr := page.Values()
	var total int64
	for {
		n, err := vr.ReadValues(d.buf)
		if int64(n) > room-total {
			return total, fmt.Errorf("more values than rows: %w", ErrInvalidFile)
		}
		vals := d.buf[:n]
		b.Reserve(n) // makes the UnsafeAppend calls below safe
		if !c.nullable {
			for _, v := range vals {
				if v.IsNull() {
					return total, fmt.Errorf("null in a required column: %w", ErrInvalidFile)
				}
			}
		}
		switch c.kind {
		case kindString:
			sb := b.(*array.StringBuilder)
			for _, v := range vals {
				if v.IsNull() {
					sb.AppendNull()
				} else {
					sb.BinaryBuilder.Append(v.ByteArray())
				}
			}
		case kindTimestamp:
			tb := b.(*array.TimestampBuilder)
			for _, v := range vals {
				if v.IsNull() {
					tb.AppendNull()
				} else {
					tb.UnsafeAppend(arrow.Timestamp(v.Int64()))
				}
			}
		case kindDate:
			db := b.(*array.Date32Builder)
			for _, v := range vals {
				if v.IsNull() {
					db.AppendNull()
				} else {
					db.UnsafeAppend(arrow.Date32(v.Int32()))
				}
			}
		case kindDecimal:
			db := b.(*array.Decimal128Builder)
			for _, v := range vals {
				switch {
				case v.IsNull():
					db.AppendNull()
				case c.int32Physical:
					db.Append(decimal128.FromI64(int64(v.Int32())))
				default:
					db.Append(decimal128.FromI64(v.Int64()))
				}
			}
		case kindBool:
			bb := b.(*array.BooleanBuilder)
			for _, v := range vals {
				if v.IsNull() {
					bb.AppendNull()
				} else {
					bb.Append(v.Boolean())
				}
			}
		case kindInt64:
			ib := b.(*array.Int64Builder)
			for _, v := range vals {
				if v.IsNull() {
					ib.AppendNull()
				} else {
					ib.UnsafeAppend(v.Int64())
				}
			}
		}
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("decoding values: %v: %w", err, ErrInvalidFile)
		}
	}
}
