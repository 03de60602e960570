package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
)

// sqlTable is one table of the dataset as a SQL engine sees it: the directory under
// the dataset root and the hive partition key in its object names, if any.
type sqlTable struct {
	name string // table (BigQuery) or view (DuckDB) name, also the directory
	// partition is the hive key of the directory level under name/ ("" for none);
	// partType is its BigQuery type, duckType its DuckDB type.
	partition, partType, duckType string
	// inFile is true when the files also carry the partition column: BigQuery refuses
	// a hive key that overlaps a column of the files, so the table reads the files'
	// column instead of declaring a partition.
	inFile bool
	// glob matches the table's objects under name/.
	glob string
}

// sqlTables follows the object names of pipeline/layout.go:
//
//	transactions/month=YYYY-MM/part-NNN.parquet
//	pending/part-NNN.parquet
//	accounts/snapshot_date=YYYY-MM-DD/part-NNN.parquet (snapshot_date is also a column)
//	deletions/month=YYYY-MM/RUN_ID.parquet
//
// month is a VARCHAR/STRING 'YYYY-MM', exactly as in the path: it sorts, groups and
// compares as text (month >= '2025-01'), and the transactions' local date is the
// DATE column date_local. snapshot_date is a DATE.
var sqlTables = []sqlTable{
	{name: "transactions", partition: "month", partType: "STRING", duckType: "VARCHAR", glob: "**/*.parquet"},
	{name: "pending", glob: "*.parquet"},
	{name: "accounts", partition: "snapshot_date", partType: "DATE", duckType: "DATE", inFile: true, glob: "**/*.parquet"},
	{name: "deletions", partition: "month", partType: "STRING", duckType: "VARCHAR", glob: "**/*.parquet"},
}

// cmdSQL prints the DDL an analyst pastes to query a dataset.
func cmdSQL(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "duckdb" && args[0] != "bigquery") {
		fmt.Fprintln(stderr, "extract sql: want 'extract sql duckdb --out DIR|gs://BUCKET/PREFIX' or 'extract sql bigquery --out gs://BUCKET/PREFIX --dataset PROJECT.DATASET'")
		return exitUsage
	}
	engine := args[0]
	fs := flag.NewFlagSet("extract sql "+engine, flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the dataset: a directory or gs://BUCKET/PREFIX (required)")
	dataset := fs.String("dataset", "", "bigquery: the dataset to create the tables in, PROJECT.DATASET (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "extract sql %s: unexpected argument %q\n", engine, fs.Arg(0))
		return exitUsage
	}
	var text string
	var err error
	if engine == "duckdb" {
		text, err = duckDBSQL(*out)
	} else {
		text, err = bigQuerySQL(*out, *dataset)
	}
	if err != nil {
		fmt.Fprintf(stderr, "extract sql %s: %v\n", engine, err)
		return exitUsage
	}
	fmt.Fprint(stdout, text)
	return exitOK
}

// sqlRoot returns the dataset root with forward slashes and no trailing slash: a
// gs://BUCKET[/PREFIX] as given, a local directory made absolute.
func sqlRoot(out string) (root string, gcs bool, err error) {
	if out == "" {
		return "", false, fmt.Errorf("--out is required (a directory or gs://BUCKET/PREFIX)")
	}
	if strings.ContainsAny(out, "\r\n") {
		return "", false, fmt.Errorf("--out %q: a line break in a path is not supported", out)
	}
	if rest, ok := strings.CutPrefix(out, "gs://"); ok {
		rest = strings.TrimRight(rest, "/")
		if bucket, _, _ := strings.Cut(rest, "/"); bucket == "" {
			return "", false, fmt.Errorf("--out %q: want gs://BUCKET/PREFIX", out)
		}
		return "gs://" + rest, true, nil
	}
	if strings.Contains(out, "://") {
		return "", false, fmt.Errorf("--out %q: only local directories and gs:// are supported", out)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", false, fmt.Errorf("--out %q: %w", out, err)
	}
	return strings.TrimRight(filepath.ToSlash(abs), "/"), false, nil
}

// sqlString quotes s as a SQL string literal (DuckDB and BigQuery standard SQL).
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// duckDBSQL returns CREATE OR REPLACE VIEW statements for transactions, pending,
// accounts_latest and deletions.
func duckDBSQL(out string) (string, error) {
	root, gcs, err := sqlRoot(out)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- DuckDB views over the Akahu dataset at %s\n", root)
	b.WriteString("-- month is VARCHAR 'YYYY-MM' (the path's text); snapshot_date and date_local are DATE.\n")
	b.WriteString("-- A view over a directory without files yet (deletions/ before the first deletion) fails to create.\n")
	if gcs {
		b.WriteString("-- DuckDB reads gs:// through its httpfs extension: run INSTALL httpfs; LOAD httpfs;\n")
		b.WriteString("-- and create a GCS secret first, e.g. CREATE SECRET (TYPE gcs, PROVIDER credential_chain);\n")
	}
	for _, t := range sqlTables {
		src := "read_parquet(" + sqlString(root+"/"+t.name+"/"+t.glob)
		if t.partition != "" {
			src += fmt.Sprintf(", hive_partitioning = true, hive_types = {%s: %s}", sqlString(t.partition), t.duckType)
		} else {
			src += ", hive_partitioning = false"
		}
		src += ")"
		if t.name == "accounts" {
			// Each account's newest snapshot; _extracted_at settles a tie.
			fmt.Fprintf(&b, "\nCREATE OR REPLACE VIEW accounts_latest AS\nSELECT * FROM %s\nQUALIFY row_number() OVER (PARTITION BY account_id ORDER BY snapshot_date DESC, _extracted_at DESC) = 1;\n", src)
			continue
		}
		fmt.Fprintf(&b, "\nCREATE OR REPLACE VIEW %s AS\nSELECT * FROM %s;\n", t.name, src)
	}
	return b.String(), nil
}

var bqDatasetRE = regexp.MustCompile(`^[a-z][a-z0-9.:-]{4,}[a-z0-9]\.[A-Za-z0-9_]+$`)

// bigQuerySQL returns CREATE OR REPLACE EXTERNAL TABLE statements for transactions,
// pending, accounts and deletions in dataset PROJECT.DATASET, and a view
// accounts_latest.
func bigQuerySQL(out, dataset string) (string, error) {
	root, gcs, err := sqlRoot(out)
	if err != nil {
		return "", err
	}
	if !gcs {
		return "", fmt.Errorf("--out %q: BigQuery reads external tables from Cloud Storage only; want gs://BUCKET/PREFIX", out)
	}
	if dataset == "" {
		return "", fmt.Errorf("--dataset PROJECT.DATASET is required")
	}
	if !bqDatasetRE.MatchString(dataset) {
		return "", fmt.Errorf("--dataset %q: want PROJECT.DATASET (a project id, a dot, letters, digits and underscores)", dataset)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- BigQuery external tables over the Akahu dataset at %s\n", root)
	b.WriteString("-- month is STRING 'YYYY-MM' (the path's text); snapshot_date and date_local are DATE.\n")
	b.WriteString("-- accounts/ carries snapshot_date in its files too, so it is read from the files, not declared as a partition.\n")
	for _, t := range sqlTables {
		prefix := root + "/" + t.name + "/"
		fmt.Fprintf(&b, "\nCREATE OR REPLACE EXTERNAL TABLE `%s.%s`\n", dataset, t.name)
		hive := t.partition != "" && !t.inFile
		if hive {
			fmt.Fprintf(&b, "WITH PARTITION COLUMNS (\n  %s %s\n)\n", t.partition, t.partType)
		}
		fmt.Fprintf(&b, "OPTIONS (\n  format = 'PARQUET',\n  uris = [%s]", sqlString(prefix+"*"))
		if hive {
			fmt.Fprintf(&b, ",\n  hive_partition_uri_prefix = %s,\n  require_hive_partition_filter = false", sqlString(prefix))
		}
		b.WriteString("\n);\n")
	}
	fmt.Fprintf(&b, "\nCREATE OR REPLACE VIEW `%s.accounts_latest` AS\nSELECT * FROM `%s.accounts`\nWHERE TRUE\nQUALIFY ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY snapshot_date DESC, _extracted_at DESC) = 1;\n", dataset, dataset)
	return b.String(), nil
}
