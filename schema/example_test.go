package schema_test

import (
	"fmt"
	"time"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func ExampleTransactionBuilder() {
	b := schema.NewTransactionBuilder(memory.NewGoAllocator(), schema.Options{
		RunID:       "run_1",
		ExtractedAt: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC),
	})
	defer b.Release()

	item := []byte(`{"_id":"trans_1","_user":"user_1","_account":"acc_1",
		"date":"2023-12-31T11:00:00.000Z","description":"COFFEE","amount":-4.5,
		"type":"EFTPOS","hash":"abc"}`)
	if err := b.Append(item, "NZD"); err != nil {
		fmt.Println(err)
		return
	}
	// A bad row is refused whole, with the field and id in the error.
	fmt.Println(b.Append([]byte(`{"_id":"trans_2","_user":"u","_account":"a","date":"2024-01-01T00:00:00Z","amount":0.00001}`), "NZD"))

	rec := b.NewRecord()
	defer rec.Release()
	col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
	fmt.Println(rec.NumRows(),
		rec.Column(col("date_local")).(*array.Date32).Value(0).FormattedString(),
		rec.Column(col("amount")).(*array.Decimal128).Value(0).ToString(schema.Money.Scale),
		rec.Column(col("extra")).(*array.String).Value(0))
	// Output:
	// schema: transaction "trans_2": field "amount": "0.00001": more fractional digits than the column's scale (scale 4): invalid Akahu object
	// 1 2024-01-01 -4.5000 {"hash":"abc"}
}
