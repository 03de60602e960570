package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/apache/arrow/go/v17/parquet/schema"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// txRow is one transactions row as an independent reader (Arrow's pqarrow) sees it.
type txRow struct {
	ID, Account, User, Description, Amount, Object string
	DateLocal                                      string
	Date                                           time.Time
	RunID                                          string
}

// readRows reads every Parquet object under prefix with pqarrow and returns its rows.
func readRows(t *testing.T, b bucket.Bucket, prefix string) []txRow {
	t.Helper()
	ctx := context.Background()
	list, err := b.List(ctx, prefix)
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	var out []txRow
	for _, a := range list {
		if !strings.HasSuffix(a.Name, ".parquet") {
			t.Errorf("%s: non-Parquet object %s visible under %s", b, a.Name, prefix)
			continue
		}
		data, _, err := b.Get(ctx, a.Name)
		if err != nil {
			t.Fatalf("get %s: %v", a.Name, err)
		}
		out = append(out, decodeTx(t, a.Name, data)...)
	}
	return out
}

func decodeTx(t *testing.T, name string, data []byte) []txRow {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: pqarrow cannot open: %v", name, err)
	}
	checkLogicalTypes(t, name, rdr.MetaData().Schema)
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("%s: read table: %v", name, err)
	}
	defer tbl.Release()
	col := func(n string) []arrow.Array {
		idx := tbl.Schema().FieldIndices(n)
		if len(idx) != 1 {
			t.Fatalf("%s: no column %q", name, n)
		}
		return tbl.Column(idx[0]).Data().Chunks()
	}
	ids, accts, users, descs, amts := col("id"), col("account_id"), col("user_id"), col("description"), col("amount")
	dls, dates, runs := col("date_local"), col("date"), col("_run_id")
	var out []txRow
	for c := range ids {
		for i := 0; i < ids[c].Len(); i++ {
			amt := amts[c].(*array.Decimal128)
			scale := amt.DataType().(*arrow.Decimal128Type).Scale
			out = append(out, txRow{
				ID: ids[c].(*array.String).Value(i), Account: accts[c].(*array.String).Value(i),
				User: users[c].(*array.String).Value(i), Description: descs[c].(*array.String).Value(i),
				Amount:    ratString(amt.Value(i).ToString(scale)),
				DateLocal: dls[c].(*array.Date32).Value(i).ToTime().Format(time.DateOnly),
				Date:      dates[c].(*array.Timestamp).Value(i).ToTime(arrow.Microsecond).UTC(),
				RunID:     runs[c].(*array.String).Value(i),
				Object:    name,
			})
		}
	}
	return out
}

// checkLogicalTypes asserts invariant 7 and 8 on the file's own schema.
func checkLogicalTypes(t *testing.T, name string, sch *schema.Schema) {
	t.Helper()
	for i := 0; i < sch.NumColumns(); i++ {
		c := sch.Column(i)
		switch c.Name() {
		case "date", "created_at", "updated_at", "_extracted_at", "deleted_at":
			ts, ok := c.LogicalType().(*schema.TimestampLogicalType)
			if !ok || !ts.IsAdjustedToUTC() || ts.TimeUnit() != schema.TimeUnitMicros || c.PhysicalType() != parquet.Types.Int64 {
				t.Errorf("%s: column %s is %s/%s, want INT64 TIMESTAMP(MICROS, UTC)", name, c.Name(), c.PhysicalType(), c.LogicalType())
			}
		case "date_local":
			if !c.LogicalType().Equals(schema.DateLogicalType{}) {
				t.Errorf("%s: column date_local is %s, want DATE", name, c.LogicalType())
			}
		case "amount", "balance":
			d, ok := c.LogicalType().(*schema.DecimalLogicalType)
			if !ok || d.Precision() != 18 || d.Scale() != 4 {
				t.Errorf("%s: column %s is %s, want DECIMAL(18,4)", name, c.Name(), c.LogicalType())
			}
		}
	}
}

// ratString normalises decimal text ("12.5000", "12.5") to a canonical exact form.
func ratString(s string) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "invalid:" + s
	}
	return r.RatString()
}

// byID indexes rows by id and fails on any duplicate id (invariant 2).
func byID(t *testing.T, rows []txRow) map[string]txRow {
	t.Helper()
	out := make(map[string]txRow, len(rows))
	for _, r := range rows {
		if prev, dup := out[r.ID]; dup {
			t.Errorf("duplicate id %s in %s and %s", r.ID, prev.Object, r.Object)
		}
		out[r.ID] = r
	}
	return out
}

// snapshot hashes every object under the given prefixes.
func snapshot(t *testing.T, b bucket.Bucket, prefixes ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range prefixes {
		list, err := b.List(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			data, _, err := b.Get(context.Background(), a.Name)
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(data)
			out[a.Name] = hex.EncodeToString(s[:])
		}
	}
	return out
}
