-- BigQuery external tables over the Akahu dataset at gs://my-bucket/akahu
-- month is STRING 'YYYY-MM' (the path's text); snapshot_date and date_local are DATE.
-- accounts/ carries snapshot_date in its files too, so it is read from the files, not declared as a partition.

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu.transactions`
WITH PARTITION COLUMNS (
  month STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/akahu/transactions/*'],
  hive_partition_uri_prefix = 'gs://my-bucket/akahu/transactions/',
  require_hive_partition_filter = false
);

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu.pending`
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/akahu/pending/*']
);

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu.accounts`
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/akahu/accounts/*']
);

CREATE OR REPLACE EXTERNAL TABLE `my-project.akahu.deletions`
WITH PARTITION COLUMNS (
  month STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/akahu/deletions/*'],
  hive_partition_uri_prefix = 'gs://my-bucket/akahu/deletions/',
  require_hive_partition_filter = false
);

CREATE OR REPLACE VIEW `my-project.akahu.accounts_latest` AS
SELECT * FROM `my-project.akahu.accounts`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY snapshot_date DESC, _extracted_at DESC) = 1;
