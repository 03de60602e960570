package duckdb_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSQLViews builds the extract binary, writes the demo dataset, runs `extract sql
// duckdb --out DIR`, executes every statement it prints, and queries each view: its
// row count equals the files read on their own (without hive partitioning), the
// transactions ids are unique, accounts_latest has one row per account (its newest
// snapshot), and the columns have their documented types.
func TestSQLViews(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "extract")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/akahu-etl/akahu-parquet/cmd/extract").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/extract: %v\n%s", err, out)
	}
	// A quote in the directory name: the printed paths must double it.
	out := filepath.Join(tmp, "it's demo")
	if b, err := exec.CommandContext(ctx, bin, "demo", "--out", out, "--users", "2", "--tx-per-month", "20").CombinedOutput(); err != nil {
		t.Fatalf("extract demo: %v\n%s", err, b)
	}
	cmd := exec.CommandContext(ctx, bin, "sql", "duckdb", "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("extract sql duckdb: %v\n%s", err, stderr.String())
	}
	ddl := stdout.String()
	t.Logf("extract sql duckdb:\n%s", ddl)

	db := openDuckDB(t, "UTC")
	// An older snapshot beside the demo's: every account the day before with another
	// balance, and one account that exists only then. accounts_latest must pick the
	// newest row of each account, the gone account's from the older day.
	newest := queryStrings(t, db, "SELECT DISTINCT snapshot_date::VARCHAR FROM read_parquet("+quote(filepath.ToSlash(filepath.Join(out, "accounts/*/*.parquet")))+")")
	if len(newest) != 1 {
		t.Fatalf("demo snapshot dates %v, want one", newest)
	}
	day, _ := time.Parse(time.DateOnly, newest[0])
	older := day.AddDate(0, 0, -1).Format(time.DateOnly)
	if err := os.MkdirAll(filepath.Join(out, "accounts", "snapshot_date="+older), 0o755); err != nil {
		t.Fatal(err)
	}
	copyOlder := fmt.Sprintf(`COPY (
		SELECT * REPLACE (DATE %s AS snapshot_date, balance_current + 1 AS balance_current) FROM read_parquet(%[2]s)
		UNION ALL
		(SELECT * REPLACE (DATE %[1]s AS snapshot_date, 'acc_gone' AS account_id) FROM read_parquet(%[2]s) LIMIT 1)
	) TO %[3]s (FORMAT parquet)`, quote(older),
		quote(filepath.ToSlash(filepath.Join(out, "accounts", "snapshot_date="+newest[0], "*.parquet"))),
		quote(filepath.ToSlash(filepath.Join(out, "accounts", "snapshot_date="+older, "part-000.parquet"))))
	if _, err := db.Exec(copyOlder); err != nil {
		t.Fatalf("%v\n%s", err, copyOlder)
	}
	n := 0
	for _, stmt := range strings.Split(ddl, ";\n") {
		if strings.TrimSpace(stripComments(stmt)) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("executed %d statements, want 4 views", n)
	}

	files := func(dir string) string {
		return fmt.Sprintf("read_parquet(%s, hive_partitioning = false)", quote(filepath.ToSlash(filepath.Join(out, dir))))
	}
	t.Run("counts", func(t *testing.T) {
		for view, raw := range map[string]string{
			"transactions": files("transactions/*/*.parquet"),
			"pending":      files("pending/*.parquet"),
			"deletions":    files("deletions/*/*.parquet"),
		} {
			got, want := queryInt(t, db, "SELECT count(*) FROM "+view), queryInt(t, db, "SELECT count(*) FROM "+raw)
			if got != want || want == 0 {
				t.Errorf("%s: %d rows, the files hold %d (want equal and > 0)", view, got, want)
			}
		}
		if dup := queryInt(t, db, "SELECT count(*) - count(DISTINCT id) FROM transactions"); dup != 0 {
			t.Errorf("%d duplicate ids in transactions", dup)
		}
		if bad := queryInt(t, db, "SELECT count(*) FROM transactions WHERE month IS DISTINCT FROM strftime(date_local, '%Y-%m')"); bad != 0 {
			t.Errorf("%d transactions whose month is not their date_local's month", bad)
		}
	})

	t.Run("accounts_latest", func(t *testing.T) {
		accounts := files("accounts/*/*.parquet")
		n, distinct := queryInt(t, db, "SELECT count(*) FROM accounts_latest"), queryInt(t, db, "SELECT count(DISTINCT account_id) FROM accounts_latest")
		all := queryInt(t, db, "SELECT count(DISTINCT account_id) FROM "+accounts)
		if n != distinct || n != all || n == 0 {
			t.Errorf("accounts_latest: %d rows, %d accounts; the snapshots hold %d accounts", n, distinct, all)
		}
		// Each row is its account's newest snapshot, and the partition agrees with the
		// files' own snapshot_date.
		q := "SELECT count(*) FROM accounts_latest l WHERE l.snapshot_date <> (SELECT max(a.snapshot_date) FROM " + accounts + " a WHERE a.account_id = l.account_id)"
		if stale := queryInt(t, db, q); stale != 0 {
			t.Errorf("%d accounts_latest rows are not their account's newest snapshot", stale)
		}
		if got := queryStrings(t, db, "SELECT snapshot_date::VARCHAR FROM accounts_latest WHERE account_id = 'acc_gone'"); fmt.Sprint(got) != "["+older+"]" {
			t.Errorf("acc_gone (only in the %s snapshot): accounts_latest dates %v", older, got)
		}
		// The newest rows are the demo's, not the older day's altered balances.
		q = "SELECT count(*) FROM accounts_latest l JOIN " + accounts + " a USING (account_id, snapshot_date) WHERE l.balance_current IS DISTINCT FROM a.balance_current"
		if bad := queryInt(t, db, q); bad != 0 {
			t.Errorf("%d accounts_latest rows differ from their snapshot's file", bad)
		}
		if newer := queryInt(t, db, "SELECT count(*) FROM accounts_latest WHERE snapshot_date = DATE "+quote(newest[0])); newer != n-1 {
			t.Errorf("%d accounts_latest rows from %s, want all %d but acc_gone", newer, newest[0], n-1)
		}
	})

	t.Run("types", func(t *testing.T) {
		common := map[string]string{
			"amount":        "DECIMAL(18,4)",
			"date":          "TIMESTAMP WITH TIME ZONE",
			"date_local":    "DATE",
			"_extracted_at": "TIMESTAMP WITH TIME ZONE",
		}
		for _, view := range []string{"transactions", "pending", "deletions"} {
			checkTypes(t, columnTypes(t, db, view), common)
		}
		checkTypes(t, columnTypes(t, db, "transactions"), map[string]string{"month": "VARCHAR", "id": "VARCHAR"})
		checkTypes(t, columnTypes(t, db, "deletions"), map[string]string{"month": "VARCHAR", "deleted_at": "TIMESTAMP WITH TIME ZONE"})
		checkTypes(t, columnTypes(t, db, "accounts_latest"), map[string]string{
			"snapshot_date":   "DATE",
			"balance_current": "DECIMAL(18,4)",
			"_extracted_at":   "TIMESTAMP WITH TIME ZONE",
		})
	})
}

// stripComments drops "--" comment lines.
func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
