package parquet

import (
	"fmt"
	"reflect"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	parquetgo "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
)

// maxInt64DecimalPrecision is the largest decimal precision whose unscaled
// values always fit an INT64 (10^18-1 < 2^63-1).
const maxInt64DecimalPrecision = 18

// maxInt32DecimalPrecision is the largest decimal precision stored as INT32.
const maxInt32DecimalPrecision = 9

// columnKind is the encoder/decoder chosen for one column.
type columnKind int

const (
	kindString columnKind = iota
	kindTimestamp
	kindDate
	kindDecimal
	kindBool
	kindInt64
)

// column describes one leaf column of a file.
type column struct {
	name     string
	kind     columnKind
	nullable bool
	dict     bool
	decimal  *arrow.Decimal128Type // kindDecimal only
	// physical int32 instead of int64 (DECIMAL over INT32 in foreign files)
	int32Physical bool
	arrowType     arrow.DataType
}

// arrowColumns maps an Arrow schema to the columns Write encodes.
func arrowColumns(sch *arrow.Schema) ([]column, error) {
	cols := make([]column, sch.NumFields())
	seen := make(map[string]bool, sch.NumFields())
	for i, f := range sch.Fields() {
		if seen[f.Name] {
			return nil, fmt.Errorf("column %q: duplicate name: %w", f.Name, ErrUnsupportedType)
		}
		seen[f.Name] = true
		c := column{name: f.Name, nullable: f.Nullable, arrowType: f.Type}
		if v, ok := f.Metadata.GetValue(FieldMetadataDictionary); ok && v == "true" {
			c.dict = true
		}
		switch t := f.Type.(type) {
		case *arrow.StringType:
			c.kind = kindString
		case *arrow.TimestampType:
			if t.Unit != arrow.Microsecond || t.TimeZone != "UTC" {
				return nil, fmt.Errorf("column %q: %s: only timestamp[us, tz=UTC] is written: %w", f.Name, t, ErrUnsupportedType)
			}
			c.kind = kindTimestamp
		case *arrow.Date32Type:
			c.kind = kindDate
		case *arrow.Decimal128Type:
			if t.Precision < 1 || t.Precision > maxInt64DecimalPrecision || t.Scale < 0 || t.Scale > t.Precision {
				return nil, fmt.Errorf("column %q: %s: decimals are stored as INT64 and need 1 <= precision <= %d and 0 <= scale <= precision: %w",
					f.Name, t, maxInt64DecimalPrecision, ErrUnsupportedType)
			}
			c.kind = kindDecimal
			c.decimal = t
			// The Parquet spec stores precision <= 9 in INT32, as Arrow does.
			c.int32Physical = t.Precision <= maxInt32DecimalPrecision
		case *arrow.BooleanType:
			c.kind = kindBool
		case *arrow.Int64Type:
			c.kind = kindInt64
		default:
			return nil, fmt.Errorf("column %q: %s: %w", f.Name, f.Type, ErrUnsupportedType)
		}
		cols[i] = c
	}
	return cols, nil
}

// parquetNode returns the parquet-go leaf node of c.
func (c column) parquetNode() parquetgo.Node {
	var n parquetgo.Node
	switch c.kind {
	case kindString:
		n = parquetgo.String()
	case kindTimestamp:
		n = parquetgo.TimestampAdjusted(parquetgo.Microsecond, true)
	case kindDate:
		n = parquetgo.Date()
	case kindDecimal:
		if c.int32Physical {
			n = parquetgo.Decimal(int(c.decimal.Scale), int(c.decimal.Precision), parquetgo.Int32Type)
		} else {
			n = parquetgo.Decimal(int(c.decimal.Scale), int(c.decimal.Precision), parquetgo.Int64Type)
		}
	case kindBool:
		n = parquetgo.Leaf(parquetgo.BooleanType)
	case kindInt64:
		n = parquetgo.Leaf(parquetgo.Int64Type) // parquet-go annotates it INT(64, signed)
	}
	var enc encoding.Encoding = &parquetgo.Plain
	if c.dict {
		enc = &parquetgo.RLEDictionary
	}
	n = parquetgo.Encoded(n, enc)
	if c.nullable {
		return parquetgo.Optional(n)
	}
	return parquetgo.Required(n)
}

// parquetSchema builds the file schema. Unlike parquet.Group, whose fields
// are sorted by name, the columns keep the Arrow schema's order, which is
// the column order analysts see.
func parquetSchema(cols []column, codec compress.Codec) *parquetgo.Schema {
	fields := make(orderedGroup, len(cols))
	for i, c := range cols {
		n := c.parquetNode()
		if codec != nil {
			n = parquetgo.Compressed(n, codec)
		}
		fields[i] = &orderedField{Node: n, name: c.name}
	}
	return parquetgo.NewSchema("schema", fields)
}

// orderedGroup is a parquet group node whose fields keep their given order.
type orderedGroup []parquetgo.Field

type orderedField struct {
	parquetgo.Node
	name string
}

func (f *orderedField) Name() string { return f.name }

func (f *orderedField) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Struct {
		for i := 0; i < base.NumField(); i++ {
			if base.Type().Field(i).Tag.Get("parquet") == f.name {
				return base.Field(i)
			}
		}
	}
	return reflect.Value{}
}

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return parquetgo.NewSchema("", g).String() }
func (g orderedGroup) Type() parquetgo.Type        { return parquetgo.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquetgo.Field   { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return goStruct(g) }

var _ parquetgo.Node = orderedGroup(nil)

// goStruct is the Go type of a row of g: exported fields F0..Fn tagged with
// the column names. parquet-go only consults it for reflection-based row
// (de)construction, which this package does not use.
func goStruct(g orderedGroup) reflect.Type {
	sf := make([]reflect.StructField, len(g))
	for i, f := range g {
		sf[i] = reflect.StructField{
			Name: "F" + strconv.Itoa(i),
			Type: f.GoType(),
			Tag:  reflect.StructTag(`parquet:"` + f.Name() + `"`),
		}
	}
	return reflect.StructOf(sf)
}
