// Command extract copies Akahu transactions into a Parquet dataset on local disk or
// Google Cloud Storage.
//
//	extract run   --out DIR|gs://BUCKET/PREFIX [--start YYYY-MM-DD] [--end YYYY-MM-DD]
//	              [--accounts acc_1,acc_2] [--workers N] [--lookback 30d] [--dry-run]
//	extract demo  [--out DIR]
//
// Credentials come from the environment only: AKAHU_APP_TOKEN, and AKAHU_USER_TOKEN
// or --user-tokens-file (one token per line). AKAHU_BASE_URL overrides the API root.
// GCS uses Application Default Credentials; STORAGE_EMULATOR_HOST points the client
// at an emulator.
//
// Exit status: 0 when every account succeeded; 1 when the run committed but some
// users or accounts failed (one line per failure on stderr); 2 for a usage or
// configuration error; 3 when the run failed and committed nothing.
package main
