-- BigQuery external tables over the Akahu dataset at gs://my-bucket
-- month is STRING 'YYYY-MM' (the path's text); snapshot_date and date_local are DATE.
-- accounts/ carries snapshot_date in its files too, so it is read from the files, not declared as a partition.

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu_raw.transactions`
WITH PARTITION COLUMNS (
  month STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/transactions/*'],
  hive_partition_uri_prefix = 'gs://my-bucket/transactions/',
  require_hive_partition_filter = false
);

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu_raw.pending`
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/pending/*']
);

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu_raw.accounts`
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/accounts/*']
);

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu_raw.deletions`
WITH PARTITION COLUMNS (
  month STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/deletions/*'],
  hive_partition_uri_prefix = 'gs://my-bucket/deletions/',
  require_hive_partition_filter = false
);

CREATE OR REPLACE VIEW `my-project.akahu_raw.accounts_latest` AS
SELECT * FROM `my-project.akahu_raw.accounts`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY snapshot_date DESC, _extracted_at DESC) = 1;
