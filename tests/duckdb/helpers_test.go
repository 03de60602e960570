package duckdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// The population is small on purpose: the module must stay well under a few minutes
// on two shared cores. 2 users × 4 accounts × 2 years × ~30 tx/month is ~5k rows.
const (
	testUsers       = 2
	testAccounts    = 4
	testTxPerMonth  = 30
	datasetTimeZone = "Pacific/Auckland"
)

// dataset is one output directory written by pipeline.Run from a fake Akahu server.
type dataset struct {
	dir    string
	srv    *akahutest.Server
	cfg    pipeline.Config
	window akahu.Window // the fake's whole history [From, To] as an Akahu window
	loc    *time.Location
}

// newDataset starts a fake Akahu and prepares a run configuration writing into a
// fresh temporary directory; nothing has run yet.
func newDataset(t *testing.T) *dataset {
	t.Helper()
	return newDatasetOf(t, akahutest.Options{Users: testUsers, AccountsPerUser: testAccounts, TxPerAccountPerMonth: testTxPerMonth})
}

// newDatasetOf is newDataset over a population of the given options.
func newDatasetOf(t *testing.T, fakeOpts akahutest.Options) *dataset {
	t.Helper()
	srv := akahutest.NewServer(fakeOpts)
	t.Cleanup(srv.Close)
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("akahu.New: %v", err)
	}
	dir := t.TempDir()
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatalf("bucket.NewLocal: %v", err)
	}
	var tokens []akahu.Token
	for _, u := range srv.Users() {
		tokens = append(tokens, akahu.Token(u.Token))
	}
	loc, err := time.LoadLocation(datasetTimeZone)
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	to := opts.To
	// The morning after the fake's last posting, advancing in real time: run ids start
	// with the time, so a later run must get a later clock.
	base, began := time.Date(to.Year(), to.Month(), to.Day()+1, 9, 0, 0, 0, to.Location()), time.Now()
	cfg := pipeline.Config{
		Out: b, Source: client, Users: tokens, ToolVersion: "duckdb-test", Workers: 4,
		Now:   func() time.Time { return base.Add(time.Since(began)) },
		Start: opts.From.Format(time.DateOnly), End: to.Format(time.DateOnly),
	}
	return &dataset{dir: dir, srv: srv, cfg: cfg, window: akahu.LocalDates(opts.From, to, loc), loc: loc}
}

// run executes one pipeline run and fails the test unless it committed cleanly.
func (d *dataset) run(t *testing.T) *pipeline.Manifest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := pipeline.Run(ctx, d.cfg)
	if err != nil {
		t.Fatalf("pipeline.Run: %v", err)
	}
	if m == nil {
		t.Fatal("pipeline.Run returned no manifest")
	}
	return m
}

// accountIDs lists every account of the population, with or without transactions.
func (d *dataset) accountIDs() []string {
	var ids []string
	for _, u := range d.srv.Users() {
		ids = append(ids, d.srv.AccountIDs(u.ID)...)
	}
	return ids
}

// settledCount is the fake's number of settled transactions over the whole history.
func (d *dataset) settledCount() int {
	n := 0
	for _, id := range d.accountIDs() {
		n += len(d.srv.Settled(id, d.window.Start, d.window.End))
	}
	return n
}

// glob returns a quoted DuckDB string literal for a path pattern under the dataset.
func (d *dataset) glob(pattern string) string {
	return quote(filepath.ToSlash(filepath.Join(d.dir, pattern)))
}

// transactions is the analyst's view of the current state.
func (d *dataset) transactions() string {
	return fmt.Sprintf("read_parquet(%s, hive_partitioning = true)", d.glob("transactions/**/*.parquet"))
}

func (d *dataset) deletions() string {
	return fmt.Sprintf("read_parquet(%s, hive_partitioning = true)", d.glob("deletions/**/*.parquet"))
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// openDuckDB opens an in-memory DuckDB with a pinned session time zone, so nothing
// depends on the machine's TZ.
func openDuckDB(t *testing.T, timeZone string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatalf("open duckdb: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	// One connection: SET applies to the session, and database/sql would otherwise
	// hand later queries to a fresh connection with default settings.
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"SET threads = 2",
		"SET TimeZone = " + quote(timeZone),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var got string
	if err := db.QueryRow("SELECT current_setting('TimeZone')").Scan(&got); err != nil || got != timeZone {
		t.Fatalf("session TimeZone = %q, %v; want %q", got, err, timeZone)
	}
	return db
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n.Int64
}

// queryStrings runs a query returning one string column.
func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("%s: scan: %v", q, err)
		}
		out = append(out, s.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// columnTypes returns DESCRIBE's column name → type.
func columnTypes(t *testing.T, db *sql.DB, relation string) map[string]string {
	t.Helper()
	q := "DESCRIBE SELECT * FROM " + relation
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: scan: %v", q, err)
		}
		types[fmt.Sprint(vals[0])] = fmt.Sprint(vals[1])
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return types
}

// checkTypes asserts DESCRIBE types of the named columns.
func checkTypes(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for col, typ := range want {
		if got[col] != typ {
			t.Errorf("column %s: type %q, want %q", col, got[col], typ)
		}
	}
}

// decimalEqual compares two decimal texts exactly ("12.5" equals "12.5000").
func decimalEqual(a, b string) bool {
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && x.Cmp(y) == 0
}
