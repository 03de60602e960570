package duckdb_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
)

// TestSnapshots reads the pending snapshot and the daily account snapshots: types, row
// counts and exact money against what the fake serves.
func TestSnapshots(t *testing.T) {
	d := newDataset(t)
	m := d.run(t)
	db := openDuckDB(t, "UTC")
	pending := fmt.Sprintf("read_parquet(%s)", d.glob("pending/*.parquet"))
	accounts := fmt.Sprintf("read_parquet(%s, hive_partitioning = true, filename = true)", d.glob("accounts/**/*.parquet"))

	t.Run("pending types", func(t *testing.T) {
		checkTypes(t, columnTypes(t, db, pending), map[string]string{
			"amount":        "DECIMAL(18,4)",
			"date":          "TIMESTAMP WITH TIME ZONE",
			"updated_at":    "TIMESTAMP WITH TIME ZONE",
			"_extracted_at": "TIMESTAMP WITH TIME ZONE",
			"date_local":    "DATE",
			"account_id":    "VARCHAR",
		})
	})

	t.Run("pending per account", func(t *testing.T) {
		total, quoted := 0, 0
		for _, acc := range d.accountIDs() {
			items := d.srv.Pending(acc)
			total += len(items)
			// Pending amounts are sometimes JSON strings, sometimes numbers: both must
			// arrive as the exact decimal.
			sum := new(big.Rat)
			for _, item := range items {
				sum.Add(sum, jsonDecimal(t, item, "amount"))
				if bytes.Contains(item, []byte(`"amount":"`)) {
					quoted++
				}
			}
			var n int64
			var got string
			if err := db.QueryRow("SELECT count(*), coalesce(sum(amount), 0)::VARCHAR FROM "+pending+" WHERE account_id = ?", acc).
				Scan(&n, &got); err != nil {
				t.Fatal(err)
			}
			if n != int64(len(items)) || !decimalEqual(got, sum.FloatString(4)) {
				t.Errorf("account %s: %d pending summing to %s, want %d summing to %s", acc, n, got, len(items), sum.FloatString(4))
			}
		}
		if quoted == 0 || quoted == total {
			t.Fatalf("%d of %d pending amounts are JSON strings; the test needs both strings and numbers", quoted, total)
		}
		if got := queryInt(t, db, "SELECT count(*) FROM "+pending); got != int64(total) || got != m.Counts.Pending {
			t.Errorf("pending rows = %d, want the fake's %d and the manifest's %d", got, total, m.Counts.Pending)
		}
		if bad := queryInt(t, db, "SELECT count(*) FROM "+pending+" WHERE date_local IS DISTINCT FROM timezone('Pacific/Auckland', date)::DATE"); bad != 0 {
			t.Errorf("%d pending rows whose date_local is not the Auckland date of date", bad)
		}
	})

	t.Run("accounts types", func(t *testing.T) {
		checkTypes(t, columnTypes(t, db, accounts), map[string]string{
			"snapshot_date":     "DATE",
			"balance_current":   "DECIMAL(18,4)",
			"balance_available": "DECIMAL(18,4)",
			"balance_limit":     "DECIMAL(18,4)",
			"balance_overdrawn": "BOOLEAN",
			"refreshed_balance": "TIMESTAMP WITH TIME ZONE",
			"_extracted_at":     "TIMESTAMP WITH TIME ZONE",
		})
	})

	t.Run("accounts snapshot", func(t *testing.T) {
		ids := d.accountIDs()
		if got := queryInt(t, db, "SELECT count(*) FROM "+accounts); got != int64(len(ids)) {
			t.Errorf("%d account rows, want one per account (%d)", got, len(ids))
		}
		if got := queryInt(t, db, "SELECT count(*) - count(DISTINCT account_id) FROM "+accounts); got != 0 {
			t.Errorf("%d duplicate accounts in one snapshot", got)
		}
		// One snapshot, dated the run's local day, and the hive directory agrees with
		// the column.
		today := d.cfg.Now().In(d.loc).Format("2006-01-02")
		if got := queryStrings(t, db, "SELECT DISTINCT snapshot_date::VARCHAR FROM "+accounts); len(got) != 1 || got[0] != today {
			t.Errorf("snapshot dates %q, want [%s]", got, today)
		}
		if bad := queryInt(t, db, "SELECT count(*) FROM "+accounts+
			" WHERE NOT contains(replace(filename, '\\', '/'), '/snapshot_date=' || strftime(snapshot_date, '%Y-%m-%d') || '/')"); bad != 0 {
			t.Errorf("%d account rows in a directory that is not their snapshot_date", bad)
		}
		for _, id := range ids {
			info, ok := d.srv.Account(id)
			if !ok {
				t.Fatalf("fake does not know account %s", id)
			}
			want := jsonDecimal(t, info.JSON, "balance", "current").FloatString(4)
			var got sql.NullString
			if err := db.QueryRow("SELECT balance_current::VARCHAR FROM "+accounts+" WHERE account_id = ?", id).Scan(&got); err != nil {
				t.Fatalf("account %s: %v", id, err)
			}
			if !decimalEqual(got.String, want) {
				t.Errorf("account %s: balance_current %q, want %s", id, got.String, want)
			}
		}
	})
}

// jsonDecimal returns the exact value of a JSON number (or numeric string) at path.
func jsonDecimal(t *testing.T, doc []byte, path ...string) *big.Rat {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: no object at %q", doc, k)
		}
		v = obj[k]
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		t.Fatalf("%s: %v is %T, not a decimal", doc, path, v)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("%s: %v = %q is not a decimal", doc, path, s)
	}
	return r
}
