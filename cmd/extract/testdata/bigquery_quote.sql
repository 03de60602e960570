-- BigQuery external tables over the Akahu dataset at gs://my-bucket/o'brien/akahu
-- month is STRING 'YYYY-MM' (the path's text); snapshot_date and date_local are DATE.
-- accounts/ carries snapshot_date in its files too, so it is read from the files, not declared as a partition.

CREATE OR REPLACE EXTERNAL TABLE `example.com:my-project.akahu.transactions`
WITH PARTITION COLUMNS (
  month STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/o''brien/akahu/transactions/*'],
  hive_partition_uri_prefix = 'gs://my-bucket/o''brien/akahu/transactions/',
  require_hive_partition_filter = false
);

CREATE OR REPLACE EXTERNAL TABLE `example.com:my-project.akahu.pending`
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/o''brien/akahu/pending/*']
);

CREATE OR REPLACE EXTERNAL TABLE `example.com:my-project.akahu.accounts`
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/o''brien/akahu/accounts/*']
);

CREATE OR REPLACE EXTERNAL TABLE `example.com:my-project.akahu.deletions`
WITH PARTITION COLUMNS (
  month STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://my-bucket/o''brien/akahu/deletions/*'],
  hive_partition_uri_prefix = 'gs://my-bucket/o''brien/akahu/deletions/',
  require_hive_partition_filter = false
);

CREATE OR REPLACE VIEW `example.com:my-project.akahu.accounts_latest` AS
SELECT * FROM `example.com:my-project.akahu.accounts`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY snapshot_date DESC, _extracted_at DESC) = 1;
