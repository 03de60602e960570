package duckdb_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestTransactionsBackfill reads a two-year backfill the way an analyst would and checks
// types (invariants 7, 8), uniqueness (2), the faithful window against the fake (1) and
// the local-date partitioning.
func TestTransactionsBackfill(t *testing.T) {
	d := newDataset(t)
	m := d.run(t)
	db := openDuckDB(t, "UTC")
	tx := d.transactions()

	t.Run("types", func(t *testing.T) {
		checkTypes(t, columnTypes(t, db, tx), map[string]string{
			"id":                "VARCHAR",
			"date":              "TIMESTAMP WITH TIME ZONE",
			"created_at":        "TIMESTAMP WITH TIME ZONE",
			"updated_at":        "TIMESTAMP WITH TIME ZONE",
			"_extracted_at":     "TIMESTAMP WITH TIME ZONE",
			"date_local":        "DATE",
			"amount":            "DECIMAL(18,4)",
			"balance":           "DECIMAL(18,4)",
			"conversion_amount": "DECIMAL(18,4)",
			"conversion_fee":    "DECIMAL(18,4)",
			"conversion_rate":   "DECIMAL(18,10)",
			"_run_id":           "VARCHAR",
			"month":             "VARCHAR", // the hive partition column
		})
	})

	t.Run("parquet physical types", func(t *testing.T) {
		// Invariant 7 at the file level: INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true),
		// never INT96 or NANOS; money as DECIMAL(18,4).
		q := fmt.Sprintf(`SELECT DISTINCT name, type, coalesce(logical_type::VARCHAR, ''), coalesce(converted_type::VARCHAR, ''),
			coalesce(scale, -1), coalesce(precision, -1)
			FROM parquet_schema(%s) WHERE name IN ('date', 'created_at', 'updated_at', '_extracted_at', 'amount', 'balance', 'date_local')`,
			d.glob("transactions/**/*.parquet"))
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		seen := map[string]int{}
		for rows.Next() {
			var name, typ, logical, converted string
			var scale, precision int
			if err := rows.Scan(&name, &typ, &logical, &converted, &scale, &precision); err != nil {
				t.Fatal(err)
			}
			seen[name]++
			switch name {
			case "date_local":
				if typ != "INT32" || converted != "DATE" {
					t.Errorf("%s: %s %s %s, want INT32 DATE", name, typ, converted, logical)
				}
			case "amount", "balance":
				if converted != "DECIMAL" || scale != 4 || precision != 18 {
					t.Errorf("%s: %s %s(%d,%d), want DECIMAL(18,4)", name, typ, converted, precision, scale)
				}
			default:
				if typ != "INT64" || !strings.Contains(logical, "isAdjustedToUTC=1") || !strings.Contains(logical, "MICROS=MicroSeconds()") ||
					!strings.Contains(logical, "NANOS=<null>") {
					t.Errorf("%s: %s %s, want INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true)", name, typ, logical)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"date", "created_at", "updated_at", "_extracted_at", "amount", "balance", "date_local"} {
			if seen[c] != 1 {
				t.Errorf("column %s: %d distinct physical descriptions across files, want 1", c, seen[c])
			}
		}
	})

	t.Run("one row per settled transaction", func(t *testing.T) {
		want := int64(d.settledCount())
		if want < 1000 {
			t.Fatalf("fake population has only %d settled transactions; the test would prove little", want)
		}
		if got := queryInt(t, db, "SELECT count(*) FROM "+tx); got != want {
			t.Errorf("count(*) = %d, want the fake's %d settled transactions", got, want)
		}
		if dup := queryInt(t, db, "SELECT count(*) - count(DISTINCT id) FROM "+tx); dup != 0 {
			t.Errorf("%d duplicate ids", dup)
		}
		if got := queryInt(t, db, "SELECT count(DISTINCT _run_id) FROM "+tx); got != 1 {
			t.Errorf("%d distinct _run_id after one run, want 1", got)
		}
		if got := queryStrings(t, db, "SELECT DISTINCT _run_id FROM "+tx); len(got) != 1 || got[0] != m.RunID {
			t.Errorf("_run_id = %q, want the manifest's %q", got, m.RunID)
		}
	})

	t.Run("per account", func(t *testing.T) {
		withTx := 0
		for _, acc := range d.accountIDs() {
			want := d.srv.Settled(acc, d.window.Start, d.window.End)
			if len(want) > 0 {
				withTx++
			}
			wantSum := d.srv.SumSettled(acc, d.window.Start, d.window.End)
			var n int64
			var sum string
			var equal bool
			err := db.QueryRow(`SELECT count(*), coalesce(sum(amount), 0)::VARCHAR,
				coalesce(sum(amount), 0) = CAST(? AS DECIMAL(38,4)) FROM `+tx+` WHERE account_id = ?`, wantSum, acc).Scan(&n, &sum, &equal)
			if err != nil {
				t.Fatalf("account %s: %v", acc, err)
			}
			if n != int64(len(want)) {
				t.Errorf("account %s: %d rows, want %d", acc, n, len(want))
			}
			if !equal || !decimalEqual(sum, wantSum) {
				t.Errorf("account %s: sum(amount) = %s, want %s", acc, sum, wantSum)
			}
			checkRows(t, d, db, acc, want)
		}
		if withTx < 2 {
			t.Fatalf("only %d accounts with transactions", withTx)
		}
	})

	t.Run("month partition is the local date's month", func(t *testing.T) {
		if bad := queryInt(t, db, "SELECT count(*) FROM "+tx+" WHERE month IS DISTINCT FROM strftime(date_local, '%Y-%m')"); bad != 0 {
			t.Errorf("%d rows whose hive month differs from strftime(date_local, '%%Y-%%m')", bad)
		}
		// 2 years of history from the 20th of a month touch 25 months.
		if got := queryInt(t, db, "SELECT count(DISTINCT month) FROM "+tx); got != 25 {
			t.Errorf("%d distinct months, want 25", got)
		}
	})

	// date_local must be the Pacific/Auckland date of date whatever the reader's session
	// zone; the explicit timezone() conversion makes the check independent of it.
	for _, zone := range []string{"UTC", "Pacific/Auckland", "America/Los_Angeles", "Asia/Kolkata"} {
		t.Run("date_local in session "+zone, func(t *testing.T) {
			zdb := openDuckDB(t, zone)
			if bad := queryInt(t, zdb, "SELECT count(*) FROM "+tx+" WHERE date_local IS DISTINCT FROM timezone('Pacific/Auckland', date)::DATE"); bad != 0 {
				t.Errorf("%d rows whose date_local is not the Auckland date of date", bad)
			}
			// The check is not vacuous: the fake posts at local midnight, which is the
			// previous day in UTC, so a reader's naive UTC date differs on every row.
			naive := queryInt(t, zdb, "SELECT count(*) FROM "+tx+" WHERE date_local <> timezone('UTC', date)::DATE")
			if total := queryInt(t, zdb, "SELECT count(*) FROM "+tx); naive != total {
				t.Errorf("%d of %d rows have a UTC date different from date_local, want all", naive, total)
			}
		})
	}
}

// checkRows compares an account's rows field by field with the fake's transactions
// (invariant 1: same ids, same values).
func checkRows(t *testing.T, d *dataset, db *sql.DB, acc string, want []akahutest.Txn) {
	t.Helper()
	rows, err := db.Query(`SELECT id, user_id, date, updated_at, amount::VARCHAR, description FROM `+d.transactions()+` WHERE account_id = ?`, acc)
	if err != nil {
		t.Fatalf("account %s: %v", acc, err)
	}
	defer rows.Close()
	type row struct {
		user, amount, desc string
		date, updated      time.Time
	}
	got := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.user, &r.date, &r.updated, &r.amount, &r.desc); err != nil {
			t.Fatalf("account %s: scan: %v", acc, err)
		}
		got[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		g, ok := got[w.ID]
		if !ok {
			t.Errorf("account %s: transaction %s missing", acc, w.ID)
			continue
		}
		delete(got, w.ID)
		if g.user != w.UserID || !g.date.Equal(w.Date) || !g.updated.Equal(w.UpdatedAt) || !decimalEqual(g.amount, w.Amount) || g.desc != w.Description {
			t.Errorf("account %s: transaction %s = {%s %s %s %s %q}, want {%s %s %s %s %q}", acc, w.ID,
				g.user, g.date.UTC().Format(time.RFC3339Nano), g.updated.UTC().Format(time.RFC3339Nano), g.amount, g.desc,
				w.UserID, w.Date.UTC().Format(time.RFC3339Nano), w.UpdatedAt.UTC().Format(time.RFC3339Nano), w.Amount, w.Description)
		}
	}
	for id := range got {
		t.Errorf("account %s: transaction %s is not served by Akahu", acc, id)
	}
}
