package duckdb_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	// The demo's first line: "demo: fake Akahu at URL with 3 users, 12925 settled transactions from ...".
	demoSettledRE = regexp.MustCompile(`(?m)^demo: .* (\d+) settled transactions `)
	// Each run's summary: "run RUNID committed in 62ms: 3 inserted, 1 updated, ..., 2 deleted, 17 pending; ...".
	demoRunRE = regexp.MustCompile(`(?m)^run (\S+) committed in [^:]+: (\d+) inserted, .*?, (\d+) deleted, `)
	// The query it tells the user to run: duckdb -c "SQL".
	demoQueryRE = regexp.MustCompile(`(?s)duckdb -c "([^"]*)"`)
)

// TestDemoOutput builds the real extract binary and runs `extract demo` as a user would
// (make demo), then runs the DuckDB query the demo prints, with the Go driver, and
// checks it against DuckDB's own per-file reading of the same output, and checks the
// dataset's invariants against the figures the demo printed: one row per id, the
// column types, the second run's deletions gone from transactions and tombstoned once,
// and a row count equal to the backfill's inserts plus the incremental run's inserts
// minus its deletions.
func TestDemoOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "extract")

	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/akahu-etl/akahu-parquet/cmd/extract")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/extract: %v\n%s", err, out)
	}

	out := filepath.Join(tmp, "demo-out")
	demo := exec.CommandContext(ctx, bin, "demo", "--out", out)
	demo.Dir = tmp
	var stdout, stderr bytes.Buffer
	demo.Stdout, demo.Stderr = &stdout, &stderr
	if err := demo.Run(); err != nil {
		t.Fatalf("extract demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	text := stdout.String()
	t.Logf("extract demo stdout:\n%s", text)
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("extract demo stderr:\n%s", s)
	}

	// What the demo says it did.
	m := demoSettledRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no \"N settled transactions\" on the demo's first line")
	}
	if first, _, _ := strings.Cut(text, "\n"); !strings.Contains(first, m[0]) {
		t.Fatalf("settled count not on the first line %q", first)
	}
	settled := atoi(t, m[1])
	runs := demoRunRE.FindAllStringSubmatch(text, -1)
	if len(runs) != 2 {
		t.Fatalf("%d \"run ... committed\" lines, want 2 (backfill and incremental)", len(runs))
	}
	runID2 := runs[1][1]
	inserted1, deleted1 := atoi(t, runs[0][2]), atoi(t, runs[0][3])
	inserted2, deleted2 := atoi(t, runs[1][2]), atoi(t, runs[1][3])
	if inserted1 != settled || deleted1 != 0 {
		t.Errorf("backfill: %d inserted, %d deleted; want the fake's %d settled, 0 deleted", inserted1, deleted1, settled)
	}
	if deleted2 == 0 || inserted2 == 0 {
		t.Errorf("incremental run: %d inserted, %d deleted; the scripted changes include both", inserted2, deleted2)
	}
	qm := demoQueryRE.FindStringSubmatch(text)
	if qm == nil {
		t.Fatalf("stdout has no `duckdb -c \"...\"` query")
	}
	query := qm[1]
	if !strings.Contains(query, filepath.ToSlash(out)+"/transactions/") {
		t.Errorf("the printed query does not read %s/transactions/: %s", out, query)
	}

	db := openDuckDB(t, "UTC")
	tx := fmt.Sprintf("read_parquet(%s, hive_partitioning = true)", quote(filepath.ToSlash(filepath.Join(out, "transactions/**/*.parquet"))))
	del := fmt.Sprintf("read_parquet(%s, hive_partitioning = true)", quote(filepath.ToSlash(filepath.Join(out, "deletions/**/*.parquet"))))

	t.Run("printed query", func(t *testing.T) {
		got := demoQueryRows(t, db, query)
		if len(got) == 0 {
			t.Fatalf("the printed query returned no rows: %s", query)
		}
		// Independently: each month directory's files read on their own, without hive
		// partitioning, the month taken from the directory name.
		want := monthsFromFiles(t, db, out)
		if len(want) == 0 {
			t.Fatal("no transactions/month=*/ directories")
		}
		months := make([]string, 0, len(want))
		for k := range want {
			months = append(months, k)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(months)))
		if n := min(6, len(months)); len(got) != n {
			t.Errorf("printed query returned %d rows, want %d (LIMIT 6 of %d months)", len(got), n, len(months))
		}
		for i, r := range got {
			if i >= len(months) {
				break
			}
			w := want[months[i]]
			if r.month != months[i] || r.txns != w.txns || !decimalEqual(r.net, w.net) {
				t.Errorf("row %d: (%s, %d, %s), want (%s, %d, %s)", i, r.month, r.txns, r.net, months[i], w.txns, w.net)
			}
		}
		t.Logf("printed query: %d rows, newest %s: %d txns, net %s", len(got), got[0].month, got[0].txns, got[0].net)
	})

	t.Run("invariants", func(t *testing.T) {
		checkTypes(t, columnTypes(t, db, tx), map[string]string{
			"date":   "TIMESTAMP WITH TIME ZONE",
			"amount": "DECIMAL(18,4)",
		})
		if dup := queryInt(t, db, "SELECT count(*) - count(DISTINCT id) FROM "+tx); dup != 0 {
			t.Errorf("%d duplicate ids in transactions", dup)
		}
		total := queryInt(t, db, "SELECT count(*) FROM "+tx)
		if want := int64(inserted1 + inserted2 - deleted2); total != want {
			t.Errorf("count(*) = %d, want %d inserted + %d inserted - %d deleted = %d", total, inserted1, inserted2, deleted2, want)
		}
		if bad := queryInt(t, db, "SELECT count(*) FROM "+tx+" WHERE month IS DISTINCT FROM strftime(timezone('Pacific/Auckland', date), '%Y-%m')"); bad != 0 {
			t.Errorf("%d rows whose month partition is not the Pacific/Auckland month of date", bad)
		}

		// The incremental run's deletions: the manifest's list, the tombstones by that
		// run and the printed count agree; each id is gone from transactions and has
		// exactly one tombstone in the whole deletions table.
		manifest := quote(filepath.ToSlash(filepath.Join(out, "_manifests", runID2+".json")))
		listed := queryStrings(t, db, "SELECT d.id FROM (SELECT unnest(deleted) AS d FROM read_json_auto("+manifest+")) ORDER BY 1")
		byRun := queryStrings(t, db, "SELECT id FROM "+del+" WHERE deleted_by_run = ? ORDER BY id", runID2)
		if len(byRun) != deleted2 || fmt.Sprint(byRun) != fmt.Sprint(listed) {
			t.Errorf("run %s printed %d deleted; tombstones by it %v; manifest lists %v", runID2, deleted2, byRun, listed)
		}
		for _, id := range byRun {
			if n := queryInt(t, db, "SELECT count(*) FROM "+tx+" WHERE id = ?", id); n != 0 {
				t.Errorf("deleted %s still in transactions %d time(s)", id, n)
			}
			if n := queryInt(t, db, "SELECT count(*) FROM "+del+" WHERE id = ?", id); n != 1 {
				t.Errorf("deleted %s has %d tombstones, want 1", id, n)
			}
		}
		if n := queryInt(t, db, "SELECT count(*) FROM "+del); n != int64(deleted1+deleted2) {
			t.Errorf("deletions hold %d tombstones, want the printed %d + %d", n, deleted1, deleted2)
		}
	})
}

type demoRow struct {
	month string
	txns  int64
	net   string
}

// demoQueryRows runs the demo's query verbatim and reads its (month, txns, net) rows.
func demoQueryRows(t *testing.T, db *sql.DB, query string) []demoRow {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("printed query: %v\n%s", err, query)
	}
	defer rows.Close()
	if cols, _ := rows.Columns(); fmt.Sprint(cols) != "[month txns net]" {
		t.Errorf("printed query columns %v, want [month txns net]", cols)
	}
	var out []demoRow
	for rows.Next() {
		var month sql.NullString
		var txns int64
		var net any // a duckdb.Decimal; its String is the exact decimal text
		if err := rows.Scan(&month, &txns, &net); err != nil {
			t.Fatalf("printed query: scan: %v", err)
		}
		out = append(out, demoRow{month.String, txns, fmt.Sprint(net)})
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("printed query: %v", err)
	}
	return out
}

// monthsFromFiles computes each month's count and net sum from that month directory's
// files alone, read without hive partitioning.
func monthsFromFiles(t *testing.T, db *sql.DB, dir string) map[string]demoRow {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "transactions"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]demoRow{}
	for _, e := range entries {
		month, ok := strings.CutPrefix(e.Name(), "month=")
		if !e.IsDir() || !ok {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, "transactions", e.Name(), "*.parquet"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no parquet files (%v)", e.Name(), err)
		}
		var list []string
		for _, f := range files {
			list = append(list, quote(filepath.ToSlash(f)))
		}
		var n int64
		var net sql.NullString
		q := fmt.Sprintf("SELECT count(*), sum(amount)::VARCHAR FROM read_parquet([%s], hive_partitioning = false)", strings.Join(list, ", "))
		if err := db.QueryRow(q).Scan(&n, &net); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n == 0 {
			continue // an empty month never appears in GROUP BY month
		}
		out[month] = demoRow{month, n, net.String}
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
