package parquet_test

import (
	"bytes"
	"fmt"
	"log"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	parquetgo "github.com/parquet-go/parquet-go"

	"github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// Write an Arrow record of two transactions as a Parquet file, show the
// Parquet types a reader such as DuckDB or BigQuery sees, and read the rows
// back: the timestamp stays UTC microseconds and the amount an exact decimal.
func Example() {
	mem := memory.NewGoAllocator()
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "date", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 18, Scale: 4}},
	}, nil)
	b := array.NewRecordBuilder(mem, sch)
	defer b.Release()
	for _, r := range []struct {
		id     string
		at     time.Time
		amount int64 // in 1/10000 of a dollar
	}{
		{"trans_1", time.Date(2026, 1, 31, 10, 59, 59, 999000000, time.UTC), -55000},
		{"trans_2", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), 1234567},
	} {
		b.Field(0).(*array.StringBuilder).Append(r.id)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.at.UnixMicro()))
		b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(r.amount))
	}
	rec := b.NewRecord()
	defer rec.Release()

	var buf bytes.Buffer
	info, err := parquet.Write(&buf, sch, []arrow.Record{rec})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", info.Rows, "rows in", info.RowGroups, "row group")

	f, err := parquetgo.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	for _, col := range f.Schema().Fields() {
		fmt.Printf("%s: %s %s\n", col.Name(), col.Type().Kind(), col.Type().LogicalType())
	}

	gotSch, recs, err := parquet.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), mem)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(gotSch.Field(1).Type, gotSch.Field(2).Type)
	for _, r := range recs {
		ids := r.Column(0).(*array.String)
		dates := r.Column(1).(*array.Timestamp)
		amounts := r.Column(2).(*array.Decimal128)
		for i := 0; i < int(r.NumRows()); i++ {
			at := dates.Value(i).ToTime(arrow.Microsecond)
			fmt.Println(ids.Value(i), at.Format(time.RFC3339Nano), amounts.Value(i).ToString(4))
		}
		r.Release()
	}
	// Output:
	// wrote 2 rows in 1 row group
	// id: BYTE_ARRAY STRING
	// date: INT64 TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)
	// amount: INT64 DECIMAL(18,4)
	// timestamp[us, tz=UTC] decimal(18, 4)
	// trans_1 2026-01-31T10:59:59.999Z -5.5000
	// trans_2 2026-02-01T00:00:00Z 123.4567
}
