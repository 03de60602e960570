// Package duckdb holds the DuckDB read-back tests of the dataset the ETL writes.
//
// It is a separate Go module (tests/duckdb/go.mod) so that the tool itself never
// depends on DuckDB or cgo. The tests, in package duckdb_test, run pipeline.Run
// in-process against the fake Akahu server (akahutest.NewServer) into a local
// directory and then query that directory the way an analyst would, through the
// DuckDB Go driver (github.com/duckdb/duckdb-go/v2, pinned): read_parquet with
// hive partitioning over transactions/, deletions/, pending/ and accounts/, and
// read_json_auto over _manifests/. They check what docs/design.md promises readers:
// column types (invariants 7 and 8), one row per live id (invariant 2), the
// faithful window against the fake's ground truth (invariant 1), tombstones
// (invariant 3) and manifest counts that agree with the data. TestSQLViews executes
// the views `extract sql duckdb` prints over the demo dataset and queries each one.
// TestLookupsReadFewRowGroups checks that a lookup by id or account reads a few row
// groups, not whole files (statistics, bloom filters and the bytes the process
// read); BenchmarkFleetLookups prints the same figures for a 20,000-user fleet
// written straight from the fake's population by the sink, without HTTP.
//
// BenchmarkNaiveScript (run by `make bench`) compares the pipeline with the naive
// baseline a fleet user might write instead: fetch every account's whole range
// through the Akahu client and have DuckDB COPY the JSON lines to month-partitioned
// Parquet, on the fleet benchmark's population, at the same concurrency.
//
// Run them with `cd tests/duckdb && go test ./...` (the Makefile's test target does).
package duckdb
