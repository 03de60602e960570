// Command extract copies Akahu transactions into a Parquet dataset on local disk or
// Google Cloud Storage.
//
//	extract run   --out DIR|gs://BUCKET/PREFIX [--start YYYY-MM-DD] [--end YYYY-MM-DD]
//	              [--accounts acc_1,acc_2] [--workers N] [--lookback 30d] [--dry-run]
//	extract demo  [--out DIR]
//	extract reshard --out DIR|gs://BUCKET/PREFIX --shards N
//	extract sql duckdb   --out DIR|gs://BUCKET/PREFIX
//	extract sql bigquery --out gs://BUCKET/PREFIX --dataset PROJECT.DATASET
//
// 'extract sql' prints the SQL an analyst pastes to start (sql.go): DuckDB views
// transactions, pending, accounts_latest (each account's newest snapshot) and
// deletions over read_parquet with typed hive partitions, or BigQuery external tables
// (and a view accounts_latest) in PROJECT.DATASET over a gs:// dataset. The month
// partition is text 'YYYY-MM'; snapshot_date is a DATE. It reads nothing: it refuses
// (exit 2) a BigQuery DDL without a gs:// --out and a --dataset.
//
// A dataset records its shard count (--shards) when it is created; a run with another
// count is refused (exit 2), and 'extract reshard' changes it while holding every lock
// of the old and the new count. Under a Kubernetes Indexed Job, which exports
// JOB_COMPLETION_INDEX but not the completion count, --shards must be given.
//
// The crash tests' seam (EXTRACT_TEST_KILL_AT) exists only in a binary built with
// -tags crashtest.
//
// Credentials come from the environment only: AKAHU_APP_TOKEN, and AKAHU_USER_TOKEN
// or --user-tokens-file (one token per line). AKAHU_BASE_URL overrides the API root.
// GCS uses Application Default Credentials; STORAGE_EMULATOR_HOST points the client
// at an emulator.
//
// Exit status: 0 when the run committed and nothing a retry could fix failed (a user
// whose token Akahu refused, revoked or forbidden, is routine: one "revoked:" or
// "forbidden:" line on stderr each); 1 when the run committed but some users or
// accounts failed in a way a later run may fix (one "failed:" line each), when every
// user was refused, or, with --fail-on-revoked, when any user was refused; 2 for a
// usage or configuration error; 3 when the run failed and committed nothing (among
// others when Akahu refused the app token: 403 for every user), or, in the rare case
// that the manifest's write lost its answer and reading it back failed too, when it
// is unknown whether it committed: stderr says so, and the next run settles it.
package main
