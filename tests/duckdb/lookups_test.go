package duckdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// What DuckDB reads for an analyst's lookup (one account, one user, one id) is
// measured two ways:
//
//   - row groups: the (file, row group) pairs whose footer statistics (min/max of
//     the column) and bloom filter (parquet_bloom_probe) admit the value: the row
//     groups DuckDB cannot skip, read from the same metadata DuckDB prunes with;
//   - bytes: the bytes the process read from files while DuckDB ran the query
//     (rchar of /proc/self/io, every read and pread of the process, so footers,
//     bloom filters and column chunks alike), with DuckDB's external file cache
//     off so each query reads what it needs. This is what a query costs on a disk
//     or, through httpfs, on GCS.

// lookup is one analyst query: rows where column = value.
type lookup struct {
	name, column, value string
}

func (l lookup) where() string { return l.column + " = " + quote(l.value) }

// readStats is what one lookup reads.
type readStats struct {
	rowGroups, totalRowGroups int64
	bytes, totalBytes         int64 // bytes < 0: not measurable on this system
	rows                      int64
}

func (r readStats) String() string {
	s := fmt.Sprintf("%d of %d row groups (%.2f%%)", r.rowGroups, r.totalRowGroups, 100*float64(r.rowGroups)/float64(r.totalRowGroups))
	if r.bytes >= 0 {
		s += fmt.Sprintf(", %s of %s read (%.2f%%)", mib(r.bytes), mib(r.totalBytes), 100*float64(r.bytes)/float64(r.totalBytes))
	}
	return s
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// processBytesRead is the process's rchar: bytes read by every read syscall so far.
func processBytesRead() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// fileList is a DuckDB list literal of files.
func fileList(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = quote(filepath.ToSlash(f))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// openLookupDB opens a DuckDB that caches nothing between queries.
func openLookupDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatalf("open duckdb: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range []string{"SET threads = 2", "SET enable_external_file_cache = false", "SET parquet_metadata_cache = false"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

// measureLookup runs l over files the way an analyst would (SELECT *, every row
// fetched) and reports what it read.
func measureLookup(t testing.TB, db *sql.DB, files []string, l lookup) readStats {
	t.Helper()
	list := fileList(files)
	var st readStats
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		st.totalBytes += fi.Size()
	}
	q := fmt.Sprintf(`WITH m AS (
			SELECT file_name, row_group_id, stats_min_value AS lo, stats_max_value AS hi
			FROM parquet_metadata(%[1]s) WHERE path_in_schema = %[2]s),
		b AS (SELECT file_name, row_group_id, bloom_filter_excludes FROM parquet_bloom_probe(%[1]s, %[2]s, %[3]s))
		SELECT count(*) FILTER (WHERE (lo IS NULL OR lo <= %[3]s) AND (hi IS NULL OR %[3]s <= hi)
				AND NOT coalesce(b.bloom_filter_excludes, false)),
			count(*)
		FROM m LEFT JOIN b USING (file_name, row_group_id)`, list, quote(l.column), quote(l.value))
	if err := db.QueryRow(q).Scan(&st.rowGroups, &st.totalRowGroups); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	st.bytes = -1
	before, ok := processBytesRead()
	rows, err := db.Query(fmt.Sprintf("SELECT * FROM read_parquet(%s, hive_partitioning = true) WHERE %s", list, l.where()))
	if err != nil {
		t.Fatalf("%s: %v", l.name, err)
	}
	for rows.Next() {
		st.rows++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", l.name, err)
	}
	rows.Close()
	if after, ok2 := processBytesRead(); ok && ok2 {
		st.bytes = after - before
	}
	return st
}

// TestLookupsReadFewRowGroups backfills a dense population through the pipeline
// (one bucket, so one file per month of about 40k rows) and checks what lets DuckDB
// answer a lookup by id, user or account without reading the dataset: more than one
// row group per file, a bloom filter on id in every row group that rejects an
// absent id, and lookups whose row groups and bytes read are a fraction of the
// dataset's.
func TestLookupsReadFewRowGroups(t *testing.T) {
	// 2 users x 3 accounts with transactions x 6,500 a month: ~39k rows a month.
	d := newDatasetOf(t, akahutest.Options{Users: 2, AccountsPerUser: 4, TxPerAccountPerMonth: 6500})
	d.cfg.Start, d.cfg.End = "2026-09-01", "2026-10-31"
	d.run(t)
	files, err := filepath.Glob(filepath.Join(d.dir, "transactions", "*", "*.parquet"))
	if err != nil || len(files) != 2 {
		t.Fatalf("files %v (%v), want one per month", files, err)
	}
	db := openLookupDB(t)
	list := fileList(files)

	t.Run("row groups per file", func(t *testing.T) {
		q := fmt.Sprintf(`SELECT file_name, count(*), sum(row_group_num_rows)::BIGINT
			FROM (SELECT DISTINCT file_name, row_group_id, row_group_num_rows FROM parquet_metadata(%s))
			GROUP BY file_name`, list)
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var name string
			var groups, numRows int64
			if err := rows.Scan(&name, &groups, &numRows); err != nil {
				t.Fatal(err)
			}
			n++
			if want := (numRows + parquetsink.DefaultRowGroupRows - 1) / parquetsink.DefaultRowGroupRows; groups != want || groups < 2 {
				t.Errorf("%s: %d rows in %d row groups, want %d (at least 2)", name, numRows, groups, want)
			}
		}
		if n != len(files) {
			t.Errorf("metadata of %d files, want %d", n, len(files))
		}
	})

	t.Run("bloom filters", func(t *testing.T) {
		for _, col := range []string{"id", "user_id", "account_id"} {
			q := fmt.Sprintf(`SELECT count(*), count(bloom_filter_offset) FROM parquet_metadata(%s) WHERE path_in_schema = %s`, list, quote(col))
			var groups, withFilter int64
			if err := db.QueryRow(q).Scan(&groups, &withFilter); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if groups == 0 || withFilter != groups {
				t.Errorf("%s: bloom filter in %d of %d row groups", col, withFilter, groups)
			}
		}
		q := fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE bloom_filter_excludes)
			FROM parquet_bloom_probe(%s, 'id', 'trans_absent000000000000000')`, list)
		var groups, excluded int64
		if err := db.QueryRow(q).Scan(&groups, &excluded); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if groups == 0 || excluded != groups {
			t.Errorf("probe of an absent id: excluded by %d of %d row groups", excluded, groups)
		}
	})

	t.Run("lookups", func(t *testing.T) {
		acc := queryStrings(t, db, fmt.Sprintf("SELECT account_id FROM read_parquet(%s) ORDER BY account_id LIMIT 1 OFFSET 20000", list))[0]
		id := queryStrings(t, db, fmt.Sprintf("SELECT id FROM read_parquet(%s) ORDER BY id LIMIT 1 OFFSET 30000", list))[0]
		for _, tc := range []struct {
			l lookup
			// at most this share of the row groups and of the bytes
			maxGroups, maxBytes float64
		}{
			// 6 row groups; room for one bloom filter false positive (~1% each)
			{lookup{"id", "id", id}, 0.34, 0.4},
			{lookup{"absent id", "id", "trans_absent000000000000000"}, 0.17, 0.2},
			{lookup{"account", "account_id", acc}, 0.5, 0.5},
		} {
			st := measureLookup(t, db, files, tc.l)
			t.Logf("%s: %d rows, %s", tc.l.name, st.rows, st)
			if tc.l.name == "id" && st.rows != 1 {
				t.Errorf("%s: %d rows, want 1", tc.l.name, st.rows)
			}
			if float64(st.rowGroups) > tc.maxGroups*float64(st.totalRowGroups) {
				t.Errorf("%s: %d of %d row groups admitted, want at most %.0f%%", tc.l.name, st.rowGroups, st.totalRowGroups, 100*tc.maxGroups)
			}
			if st.bytes >= 0 && float64(st.bytes) > tc.maxBytes*float64(st.totalBytes) {
				t.Errorf("%s: read %d of %d bytes, want at most %.0f%%", tc.l.name, st.bytes, st.totalBytes, 100*tc.maxBytes)
			}
		}
	})
}

// BenchmarkFleetLookups prints what DuckDB reads for one account's, one user's and
// one id's rows at fleet size: 20,000 users of the fake's population (3 accounts
// with transactions each, 40 a month), 16 buckets, two years, written twice from
// the same records: with the sink's previous layout (128Ki-row groups, two
// per file, no bloom filter) and with its defaults. Building it takes long, so the
// files are kept under AKAHU_FLEET_DIR (default: a directory in the system temp
// dir) and reused. AKAHU_FLEET_USERS and AKAHU_FLEET_MONTHS (whole months from
// the start; 0 = the whole history) shrink it.
//
//	cd tests/duckdb && go test -run '^$' -bench FleetLookups -benchtime 1x -timeout 6h
func BenchmarkFleetLookups(b *testing.B) {
	spec := fleetSpec{users: envInt(b, "AKAHU_FLEET_USERS", 20_000), buckets: 16, txPerMonth: 40, months: envInt(b, "AKAHU_FLEET_MONTHS", 0)}
	root := os.Getenv("AKAHU_FLEET_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), fmt.Sprintf("akahu-fleet-%d-by-user", spec.users))
	}
	variants := []struct {
		name string
		out  fleetOut
	}{
		{"128Ki-row groups, no bloom filter", fleetOut{dir: filepath.Join(root, "rg131072"),
			opts: []parquetsink.Option{parquetsink.WithRowGroupRows(128 * 1024), parquetsink.WithBloomFilters()}}},
		{fmt.Sprintf("defaults: %d-row groups, bloom filters on %s", parquetsink.DefaultRowGroupRows, strings.Join(parquetsink.DefaultBloomFilterColumns, ", ")),
			fleetOut{dir: filepath.Join(root, fmt.Sprintf("rg%d-bloom-%s", parquetsink.DefaultRowGroupRows, strings.Join(parquetsink.DefaultBloomFilterColumns, "+")))}},
	}
	var outs []fleetOut
	for _, v := range variants {
		outs = append(outs, v.out)
	}
	began := time.Now()
	if err := writeFleet(context.Background(), spec, outs); err != nil {
		b.Fatal(err)
	}
	b.Logf("fleet %s ready in %s under %s", spec, time.Since(began).Round(time.Second), root)

	// The lookups: a user in the middle of the population, its first account with
	// transactions, and one of that account's transactions from the middle month.
	f := fleetFake(spec)
	loc, err := time.LoadLocation(datasetTimeZone)
	if err != nil {
		b.Fatal(err)
	}
	months := fleetMonths(f, loc, spec.months)
	u := f.Users()[spec.users/2]
	var acc string
	for _, id := range f.AccountIDs(u.ID) {
		if info, _ := f.Account(id); info.HasTransactions {
			acc = id
			break
		}
	}
	mid := months[len(months)/2]
	txs := f.Settled(acc, mid.start, mid.end)
	if len(txs) == 0 {
		b.Fatalf("account %s has no transactions in %s", acc, mid.name)
	}
	lookups := []lookup{
		{"one account", "account_id", acc},
		{"one user", "user_id", u.ID},
		{"one id", "id", txs[len(txs)/2].ID},
		{"an absent id", "id", "trans_absent000000000000000"},
	}

	db := openLookupDB(b)
	results := map[string][]readStats{}
	for b.Loop() {
		for _, v := range variants {
			var files []string
			for _, m := range months {
				fs, err := filepath.Glob(filepath.Join(v.out.dir, "transactions", "month="+m.name, "*.parquet"))
				if err != nil {
					b.Fatal(err)
				}
				files = append(files, fs...)
			}
			var sts []readStats
			for _, l := range lookups {
				sts = append(sts, measureLookup(b, db, files, l))
			}
			results[v.name] = sts
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "fleet: %s, %d months\n", spec, len(months))
	for _, v := range variants {
		fmt.Fprintf(&sb, "%s:\n", v.name)
		for i, st := range results[v.name] {
			fmt.Fprintf(&sb, "  %-13s %6d rows  %s\n", lookups[i].name, st.rows, st)
		}
	}
	fmt.Print(sb.String()) // to stdout: go test truncates a benchmark's log
}

func envInt(t testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, s)
	}
	return n
}
