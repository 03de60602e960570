package parquet

import (
	"encoding/json"
	"fmt"
	"io"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	parquetgo "github.com/parquet-go/parquet-go"
)

// FileInfo describes a file produced by Write.
type FileInfo struct {
	Rows      int64 // rows written
	RowGroups int   // row groups written (0 for a file without rows)
}

// writeChunk is the number of values handed to a column writer at once.
const writeChunk = 1024

// maxUnscaled[p] is the largest unscaled value of a decimal of precision p.
var maxUnscaled = func() [maxInt64DecimalPrecision + 1]int64 {
	var m [maxInt64DecimalPrecision + 1]int64
	v := int64(1)
	for p := 1; p <= maxInt64DecimalPrecision; p++ {
		v *= 10
		m[p] = v - 1
	}
	return m
}()

// Write encodes recs, whose columns must match sch, as one Parquet file on w
// and reports what it wrote. The same schema, records and options always
// produce the same bytes.
//
// The Arrow schema's metadata and the WithKeyValue pairs become the file's
// key-value metadata; Arrow field metadata is kept under
// MetadataKeyFieldMetadata. Columns whose field metadata has
// "parquet.dictionary": "true" are dictionary encoded, all others plain.
// Every column chunk carries min/max statistics and a page index.
//
// Write reads recs but does not retain or release them. On error, w may
// have received a partial file.
func Write(w io.Writer, sch *arrow.Schema, recs []arrow.Record, opts ...Option) (FileInfo, error) {
	cfg := newWriteConfig(opts)
	if sch == nil {
		return FileInfo{}, fmt.Errorf("parquet: nil schema: %w", ErrSchemaMismatch)
	}
	cols, err := arrowColumns(sch)
	if err != nil {
		return FileInfo{}, fmt.Errorf("parquet: %w", err)
	}
	for ri, rec := range recs {
		if err := checkRecord(sch, cols, rec); err != nil {
			return FileInfo{}, fmt.Errorf("parquet: record %d: %w", ri, err)
		}
	}

	kv := fileMetadata(sch, cfg)
	key, reusable := writerKeyOf(sch, cfg, kv)
	pooled := getWriter(key, reusable)
	if pooled == nil {
		pooled = newReusableWriter(w, cols, cfg, kv)
	} else {
		pooled.pw.Reset(w)
		for k, v := range kv {
			pooled.pw.SetKeyValueMetadata(k, v) // the same keys: each value replaced in place
		}
	}
	info, err := pooled.writeFile(cols, recs, cfg)
	if err != nil {
		return FileInfo{}, err
	}
	putWriter(key, reusable, pooled) // only a writer that closed its file goes back
	return info, nil
}

// writeFile writes recs as one file through w's writer and closes it.
func (w *reusableWriter) writeFile(cols []column, recs []arrow.Record, cfg writeConfig) (FileInfo, error) {
	pw, enc := w.pw, &w.enc
	cws := pw.ColumnWriters()
	if len(cws) != len(cols) {
		return FileInfo{}, fmt.Errorf("parquet: writer has %d columns, schema %d: %w", len(cws), len(cols), ErrSchemaMismatch)
	}
	var info FileInfo
	inGroup := 0
	for ri, rec := range recs {
		n := int(rec.NumRows())
		for off := 0; off < n; {
			m := min(n-off, cfg.rowGroupRows-inGroup)
			for ci := range cols {
				if err := enc.writeColumn(cws[ci], &cols[ci], ci, rec.Column(ci), off, off+m); err != nil {
					return FileInfo{}, fmt.Errorf("parquet: record %d: column %q: %w", ri, cols[ci].name, err)
				}
			}
			off += m
			inGroup += m
			info.Rows += int64(m)
			if inGroup == cfg.rowGroupRows {
				if err := pw.Flush(); err != nil {
					return FileInfo{}, fmt.Errorf("parquet: flushing row group: %w", err)
				}
				inGroup = 0
			}
		}
	}
	if err := pw.Close(); err != nil {
		return FileInfo{}, fmt.Errorf("parquet: closing file: %w", err)
	}
	if f := pw.File(); f != nil {
		info.RowGroups = len(f.Metadata().RowGroups)
	}
	return info, nil
}

// writerOptions translates cfg into parquet-go writer options, with kv as the file's
// key-value metadata (fileMetadata).
func writerOptions(cols []column, cfg writeConfig, kv map[string]string) []parquetgo.WriterOption {
	opts := []parquetgo.WriterOption{
		parquetSchema(cols, cfg.codec),
		&parquetgo.WriterConfig{CreatedBy: CreatedBy},
		parquetgo.PageBufferSize(cfg.pageBytes),
		parquetgo.DataPageVersion(1),
		parquetgo.DataPageStatistics(true),
		parquetgo.MaxRowsPerRowGroup(int64(cfg.rowGroupRows)),
	}
	if cfg.codec != nil {
		opts = append(opts, parquetgo.Compression(cfg.codec))
	}
	for k, v := range kv { // parquet-go sorts the pairs by key
		opts = append(opts, parquetgo.KeyValueMetadata(k, v))
	}
	var filters []parquetgo.BloomFilterColumn
	for _, name := range cfg.bloom {
		for _, c := range cols {
			if c.name == name {
				filters = append(filters, parquetgo.SplitBlockFilter(DefaultBloomFilterBitsPerValue, name))
				break
			}
		}
	}
	if len(filters) > 0 {
		opts = append(opts, parquetgo.BloomFilters(filters...))
	}
	return opts
}

// fieldMetadataJSON encodes the schema's field metadata as a JSON object of
// column name to key/value object; encoding/json sorts map keys, so the text
// is deterministic. It returns "" when no field has metadata.
func fieldMetadataJSON(sch *arrow.Schema) string {
	m := map[string]map[string]string{}
	for _, f := range sch.Fields() {
		if f.Metadata.Len() == 0 {
			continue
		}
		kv := make(map[string]string, f.Metadata.Len())
		for i, k := range f.Metadata.Keys() {
			kv[k] = f.Metadata.Values()[i]
		}
		m[f.Name] = kv
	}
	if len(m) == 0 {
		return ""
	}
	b, err := json.Marshal(m)
	if err != nil { // cannot happen for maps of strings
		panic(err)
	}
	return string(b)
}

// checkRecord verifies that rec has the columns of sch, in order.
func checkRecord(sch *arrow.Schema, cols []column, rec arrow.Record) error {
	if rec == nil {
		return fmt.Errorf("nil record: %w", ErrSchemaMismatch)
	}
	if int(rec.NumCols()) != len(cols) {
		return fmt.Errorf("%d columns, schema has %d: %w", rec.NumCols(), len(cols), ErrSchemaMismatch)
	}
	rs := rec.Schema()
	for i, c := range cols {
		f := rs.Field(i)
		if f.Name != c.name || !arrow.TypeEqual(f.Type, c.arrowType) {
			return fmt.Errorf("column %d is %q %s, schema has %q %s: %w", i, f.Name, f.Type, c.name, c.arrowType, ErrSchemaMismatch)
		}
		if col := rec.Column(i); !arrow.TypeEqual(col.DataType(), c.arrowType) || col.Len() != int(rec.NumRows()) {
			return fmt.Errorf("column %q: array %s of length %d: %w", c.name, col.DataType(), col.Len(), ErrSchemaMismatch)
		}
		if !c.nullable && rec.Column(i).NullN() > 0 {
			return fmt.Errorf("column %q: %d nulls in a non-nullable column: %w", c.name, rec.Column(i).NullN(), ErrInvalidValue)
		}
	}
	_ = sch
	return nil
}

// encoder turns Arrow array slices into parquet values, chunk by chunk.
type encoder struct {
	buf []parquetgo.Value
}

// writeColumn writes rows [i, j) of arr to cw.
func (e *encoder) writeColumn(cw *parquetgo.ColumnWriter, c *column, ci int, arr arrow.Array, i, j int) error {
	def := 0
	if c.nullable {
		def = 1
	}
	hasNulls := arr.NullN() > 0
	null := parquetgo.NullValue().Level(0, 0, ci)
	for lo := i; lo < j; lo += writeChunk {
		hi := min(lo+writeChunk, j)
		vals := e.buf[:hi-lo]
		switch c.kind {
		case kindString:
			a := arr.(*array.String)
			for k := range vals {
				r := lo + k
				if hasNulls && a.IsNull(r) {
					vals[k] = null
					continue
				}
				s := a.Value(r)
				vals[k] = parquetgo.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s))).Level(0, def, ci)
			}
		case kindTimestamp:
			a := arr.(*array.Timestamp)
			src := a.TimestampValues()
			for k := range vals {
				r := lo + k
				if hasNulls && a.IsNull(r) {
					vals[k] = null
					continue
				}
				vals[k] = parquetgo.Int64Value(int64(src[r])).Level(0, def, ci)
			}
		case kindDate:
			a := arr.(*array.Date32)
			src := a.Date32Values()
			for k := range vals {
				r := lo + k
				if hasNulls && a.IsNull(r) {
					vals[k] = null
					continue
				}
				vals[k] = parquetgo.Int32Value(int32(src[r])).Level(0, def, ci)
			}
		case kindDecimal:
			a := arr.(*array.Decimal128)
			src := a.Values()
			limit := maxUnscaled[c.decimal.Precision]
			for k := range vals {
				r := lo + k
				if hasNulls && a.IsNull(r) {
					vals[k] = null
					continue
				}
				lo64 := int64(src[r].LowBits())
				if src[r].HighBits() != lo64>>63 || lo64 > limit || lo64 < -limit {
					return fmt.Errorf("row %d: %s does not fit %s: %w", r, src[r].ToString(c.decimal.Scale), c.decimal, ErrInvalidValue)
				}
				if c.int32Physical {
					vals[k] = parquetgo.Int32Value(int32(lo64)).Level(0, def, ci)
				} else {
					vals[k] = parquetgo.Int64Value(lo64).Level(0, def, ci)
				}
			}
		case kindBool:
			a := arr.(*array.Boolean)
			for k := range vals {
				r := lo + k
				if hasNulls && a.IsNull(r) {
					vals[k] = null
					continue
				}
				vals[k] = parquetgo.BooleanValue(a.Value(r)).Level(0, def, ci)
			}
		case kindInt64:
			a := arr.(*array.Int64)
			src := a.Int64Values()
			for k := range vals {
				r := lo + k
				if hasNulls && a.IsNull(r) {
					vals[k] = null
					continue
				}
				vals[k] = parquetgo.Int64Value(src[r]).Level(0, def, ci)
			}
		}
		if _, err := cw.WriteRowValues(vals); err != nil {
			return fmt.Errorf("rows %d-%d: %w", lo, hi, err)
		}
	}
	return nil
}
