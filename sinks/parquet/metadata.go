package parquet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/parquet-go/parquet-go/format"
)

// Metadata is what a Parquet footer says about a file, read without
// decoding any page.
type Metadata struct {
	Rows      int64
	RowGroups int
	KeyValue  map[string]string // the file's key-value metadata, as stored
	Columns   []ColumnMetadata  // in file order
}

// ColumnMetadata summarises one column over all row groups.
//
// Min and Max are set only when every row group with non-null values
// carries statistics for the column. Their Go types follow the column:
// string (STRING), int64 (INT64), bool (BOOLEAN), time.Time in UTC
// (timestamps; dates as midnight UTC) and, for decimals, the exact decimal
// text such as "-12.3400".
type ColumnMetadata struct {
	Name     string
	Nullable bool
	Nulls    int64 // null count summed over row groups, from statistics
	Min, Max any
}

// ReadMetadata reads the footer of a Parquet file: row and row-group counts,
// key-value metadata, and per-column null counts and min/max statistics.
// Columns whose type Read does not support are listed with no min/max.
func ReadMetadata(r io.ReaderAt, size int64) (Metadata, error) {
	return readMetadata(r, size, true)
}

// ReadMetadataRanged is ReadMetadata for a file of size bytes that fetch reads by
// byte range: it reads the last TailBytes (the whole file when smaller) and, when the
// footer is longer, the rest of the footer, and nothing else (not the magic bytes at
// the start, no page). A failure of fetch is returned wrapped as it is (its class
// kept).
func ReadMetadataRanged(fetch RangeFunc, size int64) (Metadata, error) {
	if fetch == nil || size < 0 {
		return Metadata{}, fmt.Errorf("parquet: no input: %w", ErrInvalidFile)
	}
	rr := &rangeReader{fetch: fetch, size: size}
	if err := rr.loadTail(); err != nil {
		return Metadata{}, fmt.Errorf("parquet: reading the footer: %w", err)
	}
	md, err := readMetadata(rr, size, false)
	if ferr := rr.failure(); ferr != nil {
		return Metadata{}, fmt.Errorf("parquet: ranged read: %w", ferr)
	}
	return md, err
}

func readMetadata(r io.ReaderAt, size int64, checkHead bool) (md Metadata, err error) {
	defer func() {
		if p := recover(); p != nil {
			md, err = Metadata{}, fmt.Errorf("parquet: decoding footer failed: %v: %w", p, ErrInvalidFile)
		}
	}()
	f, err := openFile(r, size, checkHead)
	if err != nil {
		return Metadata{}, err
	}
	fm := f.Metadata()
	md.Rows = fm.NumRows
	md.RowGroups = len(fm.RowGroups)
	md.KeyValue = make(map[string]string, len(fm.KeyValueMetadata))
	for _, kv := range fm.KeyValueMetadata {
		md.KeyValue[kv.Key] = kv.Value
	}
	if len(fm.Schema) == 0 {
		return Metadata{}, fmt.Errorf("parquet: empty schema: %w", ErrInvalidFile)
	}
	for leaf, e := range fm.Schema[1:] {
		rep, _ := e.RepetitionType.Get()
		cm := ColumnMetadata{Name: e.Name, Nullable: rep == format.Optional}
		c, cerr := columnOf(e)
		minB, maxB, nulls, ok := chunkBounds(fm.RowGroups, leaf, c, cerr == nil)
		cm.Nulls = nulls
		if ok {
			cm.Min, cm.Max = boundValue(c, minB), boundValue(c, maxB)
			if cm.Min == nil || cm.Max == nil {
				cm.Min, cm.Max = nil, nil
			}
		}
		md.Columns = append(md.Columns, cm)
	}
	return md, nil
}

// chunkBounds folds the column chunk statistics of one leaf over the row
// groups. ok is false when some row group with values lacks them.
func chunkBounds(rgs []format.RowGroup, leaf int, c column, typed bool) (minB, maxB []byte, nulls int64, ok bool) {
	ok = typed
	seen := false
	for _, rg := range rgs {
		if leaf >= len(rg.Columns) {
			return nil, nil, nulls, false
		}
		st := rg.Columns[leaf].MetaData.Statistics
		nulls += st.NullCount
		lo, hi := st.MinValue, st.MaxValue
		if lo == nil || hi == nil {
			if rg.NumRows > st.NullCount {
				ok = false
			}
			continue
		}
		if !seen || compareBound(c, lo, minB) < 0 {
			minB = lo
		}
		if !seen || compareBound(c, hi, maxB) > 0 {
			maxB = hi
		}
		seen = true
	}
	return minB, maxB, nulls, ok && seen
}

// compareBound orders two PLAIN-encoded statistics values of c's type.
func compareBound(c column, a, b []byte) int {
	switch {
	case c.kind == kindString:
		return bytes.Compare(a, b)
	case c.kind == kindBool:
		return int(boolOf(a)) - int(boolOf(b))
	case c.kind == kindDate || c.int32Physical:
		x, y := int32Of(a), int32Of(b)
		return cmpInt(int64(x), int64(y))
	default:
		return cmpInt(int64OfBytes(a), int64OfBytes(b))
	}
}

// boundValue converts a PLAIN-encoded statistics value to its Go value.
func boundValue(c column, b []byte) any {
	switch c.kind {
	case kindString:
		return string(b)
	case kindBool:
		if len(b) < 1 {
			return nil
		}
		return boolOf(b) == 1
	case kindInt64:
		if len(b) < 8 {
			return nil
		}
		return int64OfBytes(b)
	case kindDate:
		if len(b) < 4 {
			return nil
		}
		return time.Unix(int64(int32Of(b))*86400, 0).UTC()
	case kindTimestamp:
		if len(b) < 8 {
			return nil
		}
		v := int64OfBytes(b)
		switch c.arrowType.String() {
		case "timestamp[ms, tz=UTC]", "timestamp[ms]":
			return time.UnixMilli(v).UTC()
		case "timestamp[ns, tz=UTC]", "timestamp[ns]":
			return time.Unix(0, v).UTC()
		default:
			return time.UnixMicro(v).UTC()
		}
	case kindDecimal:
		var v int64
		if c.int32Physical {
			if len(b) < 4 {
				return nil
			}
			v = int64(int32Of(b))
		} else {
			if len(b) < 8 {
				return nil
			}
			v = int64OfBytes(b)
		}
		return decimal128.FromI64(v).ToString(c.decimal.Scale)
	}
	return nil
}

func boolOf(b []byte) byte {
	if len(b) > 0 && b[0]&1 == 1 {
		return 1
	}
	return 0
}

func int32Of(b []byte) int32 {
	if len(b) < 4 {
		return math.MinInt32
	}
	return int32(binary.LittleEndian.Uint32(b))
}

func int64OfBytes(b []byte) int64 {
	if len(b) < 8 {
		return math.MinInt64
	}
	return int64(binary.LittleEndian.Uint64(b))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
