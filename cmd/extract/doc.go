// Command extract copies Akahu transactions into a Parquet dataset on local disk or
// Google Cloud Storage.
//
//	extract run   --out DIR|gs://BUCKET/PREFIX [--start YYYY-MM-DD] [--end YYYY-MM-DD]
//	              [--accounts acc_1,acc_2] [--workers N] [--lookback 30d] [--dry-run]
//	extract demo  [--out DIR]
//	extract status --out DIR|gs://BUCKET/PREFIX [--json] [--max-age 36h]
//	extract reshard --out DIR|gs://BUCKET/PREFIX --shards N
//	extract sql duckdb   --out DIR|gs://BUCKET/PREFIX
//	extract sql bigquery --out gs://BUCKET/PREFIX --dataset PROJECT.DATASET
//	extract fake-akahu [--addr 127.0.0.1:PORT] [--users N] [--seed S] [--faults SPEC]
//
// 'extract sql' prints the SQL an analyst pastes to start (sql.go): DuckDB views
// transactions, pending, accounts_latest (each account's newest snapshot) and
// deletions over read_parquet with typed hive partitions, or BigQuery external tables
// (and a view accounts_latest) in PROJECT.DATASET over a gs:// dataset. The month
// partition is text 'YYYY-MM'; snapshot_date is a DATE. It reads nothing: it refuses
// (exit 2) a BigQuery DDL without a gs:// --out and a --dataset.
//
// 'extract status' prints a dataset at a glance (status.go): its layout, each shard's
// last committed run (age, counts, failed accounts, refused users), accounts whose
// covered_through lags their shard's newest, locks (held or expired) and in-flight
// markers (in progress or crashed), and objects, rows and bytes per table; --json prints
// pipeline.StatusReport as JSON. It reads only and exits 1 when a shard's last run
// finished more than --max-age ago or it never committed, 2 when --out is not a
// dataset, 3 when the dataset cannot be read.
//
// A dataset records its shard count (--shards) when it is created; a run with another
// count is refused (exit 2), and 'extract reshard' changes it while holding every lock
// of the old and the new count. Under a Kubernetes Indexed Job, which exports
// JOB_COMPLETION_INDEX but not the completion count, --shards must be given.
//
// Without --shard, a process is task i (CLOUD_RUN_TASK_INDEX or JOB_COMPLETION_INDEX)
// of --tasks (default CLOUD_RUN_TASK_COUNT, else --shards) and runs shards i,
// i+tasks, … one after another, sharing a pipeline.StateCache; it exits with the
// worst of their statuses. --shard runs that one shard. --rps is divided by the tasks.
//
// 'extract fake-akahu' serves the fake Akahu that 'extract demo' runs against, over plain
// http, until SIGINT or SIGTERM, for developing tools against it. It prints its base URL,
// the fake's app and user tokens (test tokens that work only against it, not secrets)
// and an example 'extract run' command line, on stdout only. --addr defaults to a free
// port on 127.0.0.1; a host must be named (0.0.0.0:PORT serves every interface, and
// 'extract run' accepts http:// only for loopback). --faults is a comma-separated list
// of KEY=PROBABILITY, each key at most once, probabilities from 0 to 1 adding up to at
// most 1; each request suffers at most one of: 429 (rate limited, no Retry-After), a
// status from 500 to 599, truncate (the body cut short), malformed (invalid JSON), reset
// (the connection reset) or slow (answered after 1s). The faults are drawn from --seed.
//
// Logs go to stderr. --log-format auto picks gcp under a Cloud Run Job (CLOUD_RUN_JOB is
// set), text on a terminal and JSON otherwise; gcp writes the JSON lines Cloud Logging
// parses on Cloud Run and GKE: severity (DEBUG, INFO, WARNING or ERROR), message, time
// (RFC 3339) and the run_id and shard attributes as logging.googleapis.com/labels, other
// attributes as top-level fields. On GKE pass --log-format gcp. Tokens log as
// "[REDACTED]" in every format.
//
// --refresh asks Akahu to fetch each user's data from the banks before extracting and
// waits up to --refresh-wait (3m) for the accounts to show it; an account that does not,
// or whose user's refresh request failed, is extracted as Akahu has it, with a warning
// on stderr and a note in the manifest. The exit status is unchanged by it.
//
// On a terminal with text logs, stderr shows one progress line (windows done of
// planned, rows read, requests per second, ETA) that log lines are written above
// (progress.go); nothing is drawn on a pipe, or with JSON or gcp logs.
//
// The crash tests' seam (EXTRACT_TEST_KILL_AT) exists only in a binary built with
// -tags crashtest.
//
// Credentials come from the environment only: AKAHU_APP_TOKEN, and AKAHU_USER_TOKEN
// or --user-tokens-file (one token per line, optionally followed by the token's Akahu
// user id: shards then leave other shards' users without a request). AKAHU_BASE_URL
// overrides the API root.
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
