package main

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/akahu-etl/akahu-parquet/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestSQLBigQueryGolden checks the BigQuery DDL against golden files: a plain prefix,
// a bucket root, and a prefix whose quote must be doubled.
func TestSQLBigQueryGolden(t *testing.T) {
	cases := []struct{ golden, out, dataset string }{
		{"bigquery_prefix.sql", "gs://my-bucket/akahu", "my-project.akahu"},
		{"bigquery_bucket_root.sql", "gs://my-bucket/", "my-project.akahu_raw"},
		{"bigquery_quote.sql", "gs://my-bucket/o'brien/akahu", "example.com:my-project.akahu"},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), []string{"sql", "bigquery", "--out", c.out, "--dataset", c.dataset}, &stdout, &stderr, func(string) string { return "" })
			if code != exitOK {
				t.Fatalf("exit %d, stderr: %s", code, stderr.String())
			}
			path := filepath.Join("testdata", c.golden)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/extract -run TestSQLBigQueryGolden -update)", err)
			}
			if got := stdout.String(); got != string(want) {
				t.Errorf("%s differs from the golden file (rerun with -update if intended)\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// TestSQLRefused: each misuse exits 2 with a message naming what is wrong and prints
// no SQL.
func TestSQLRefused(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no engine", []string{"sql"}, "extract sql duckdb"},
		{"unknown engine", []string{"sql", "postgres", "--out", "x"}, "extract sql bigquery"},
		{"duckdb without out", []string{"sql", "duckdb"}, "--out is required"},
		{"duckdb s3", []string{"sql", "duckdb", "--out", "s3://b/p"}, "only local directories and gs://"},
		{"duckdb line break", []string{"sql", "duckdb", "--out", "a\n;DROP"}, "line break"},
		{"bigquery local out", []string{"sql", "bigquery", "--out", "./warehouse", "--dataset", "p.d"}, "want gs://BUCKET/PREFIX"},
		{"bigquery no bucket", []string{"sql", "bigquery", "--out", "gs:///p", "--dataset", "my-project.d"}, "want gs://BUCKET/PREFIX"},
		{"bigquery without dataset", []string{"sql", "bigquery", "--out", "gs://b/p"}, "--dataset PROJECT.DATASET is required"},
		{"bigquery dataset without project", []string{"sql", "bigquery", "--out", "gs://b/p", "--dataset", "akahu"}, "want PROJECT.DATASET"},
		{"bigquery dataset with backtick", []string{"sql", "bigquery", "--out", "gs://b/p", "--dataset", "my-project.a`b"}, "want PROJECT.DATASET"},
		{"extra argument", []string{"sql", "duckdb", "--out", "x", "y"}, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), c.args, &stdout, &stderr, func(string) string { return "" })
			if code != exitUsage || !strings.Contains(stderr.String(), c.want) || stdout.Len() != 0 {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2, stderr containing %q, no stdout", code, stderr.String(), stdout.String(), c.want)
			}
		})
	}
}

// TestSQLDuckDBPaths checks the DuckDB views' paths: a local directory made absolute,
// quotes doubled, gs:// kept with the httpfs comment, one statement per view.
func TestSQLDuckDBPaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's")
	local, err := duckDBSQL(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "'" + strings.ReplaceAll(filepath.ToSlash(dir), "'", "''") + "/transactions/**/*.parquet'"
	if !strings.Contains(local, want) {
		t.Errorf("local DDL lacks %s:\n%s", want, local)
	}
	if strings.Contains(local, "httpfs") {
		t.Errorf("local DDL mentions httpfs:\n%s", local)
	}
	gcs, err := duckDBSQL("gs://b/p/")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"httpfs", "'gs://b/p/transactions/**/*.parquet'", "'gs://b/p/accounts/**/*.parquet'"} {
		if !strings.Contains(gcs, s) {
			t.Errorf("gs:// DDL lacks %s:\n%s", s, gcs)
		}
	}
	views := regexp.MustCompile(`(?m)^CREATE OR REPLACE VIEW (\w+) AS$`).FindAllStringSubmatch(gcs, -1)
	var names []string
	for _, v := range views {
		names = append(names, v[1])
	}
	if got := strings.Join(names, " "); got != "transactions pending accounts_latest deletions" {
		t.Errorf("views %q, want transactions pending accounts_latest deletions", got)
	}
}

// TestSQLTablesMatchLayout writes a small demo dataset and checks the tables the DDL
// declares against the object names the pipeline actually writes and the Parquet
// schemas: every directory holding objects is a table; every hive key (key=value
// path segment) of a table's objects is its partition key, at the level and in the
// format the DDL assumes; a declared partition overlaps no data column unless the
// table says so (accounts: BigQuery then reads the files' column), and every data
// column is named once.
func TestSQLTablesMatchLayout(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--out", dir, "--users", "1", "--accounts-per-user", "2", "--tx-per-month", "10"} // enough for the scripted deletions
	if code := cmdDemo(context.Background(), args, &stdout, &stderr, func(string) string { return "" }); code != exitOK {
		t.Fatalf("demo exit %d: %s", code, stderr.String())
	}
	schemas := map[string]*arrow.Schema{
		"transactions": schema.Transactions(),
		"pending":      schema.Pending(),
		"accounts":     schema.Accounts(),
		"deletions":    schema.Deletions(),
	}
	tables := map[string]sqlTable{}
	for _, tb := range sqlTables {
		tables[tb.name] = tb
		if schemas[tb.name] == nil {
			t.Errorf("table %s has no schema", tb.name)
		}
	}
	valueRE := map[string]*regexp.Regexp{
		"STRING": regexp.MustCompile(`^\d{4}-\d{2}$`),       // month, compared as text
		"DATE":   regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`), // a DATE literal
	}
	seen := map[string]int{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		tb, ok := tables[parts[0]]
		if !ok {
			t.Errorf("%s: Parquet object outside the tables the DDL declares", rel)
			return nil
		}
		seen[tb.name]++
		dirs := parts[1 : len(parts)-1]
		if tb.partition == "" {
			if len(dirs) != 0 {
				t.Errorf("%s: directories under an unpartitioned table", rel)
			}
			if ok, _ := filepath.Match(tb.glob, strings.Join(parts[1:], "/")); !ok {
				t.Errorf("%s: not matched by the table's glob %s", rel, tb.glob)
			}
			return nil
		}
		if len(dirs) != 1 {
			t.Errorf("%s: want exactly one hive level %s=…", rel, tb.partition)
			return nil
		}
		key, value, ok := strings.Cut(dirs[0], "=")
		if !ok || key != tb.partition {
			t.Errorf("%s: hive key %q, the DDL declares %q", rel, key, tb.partition)
		} else if !valueRE[tb.partType].MatchString(value) {
			t.Errorf("%s: %s=%q is not a %s value the DDL's type expects", rel, key, value, tb.partType)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range sqlTables {
		if seen[tb.name] == 0 {
			t.Errorf("the demo wrote no %s/ objects", tb.name)
		}
		sch := schemas[tb.name]
		if sch == nil {
			continue
		}
		names := map[string]int{}
		for _, f := range sch.Fields() {
			names[f.Name]++
			if names[f.Name] > 1 {
				t.Errorf("%s: column %s twice", tb.name, f.Name)
			}
		}
		if tb.partition == "" {
			continue
		}
		if _, inFile := names[tb.partition]; inFile != tb.inFile {
			t.Errorf("%s: partition %s in the file schema = %v, the DDL assumes %v", tb.name, tb.partition, inFile, tb.inFile)
		}
		if tb.inFile {
			f, _ := sch.FieldsByName(tb.partition)
			if len(f) != 1 || !arrow.TypeEqual(f[0].Type, schema.Date) || tb.partType != "DATE" {
				t.Errorf("%s: column %s is %v, the DDL's partition type %s", tb.name, tb.partition, f, tb.partType)
			}
		}
	}
}
