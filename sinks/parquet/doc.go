// Package parquet is the warehouse's Parquet codec: it encodes Arrow records
// into Parquet file bytes with github.com/parquet-go/parquet-go and decodes
// them back into Arrow records.
//
// The package owns the mapping between the Arrow types the schema package
// produces and the Parquet physical and logical types analysts' engines
// (DuckDB, BigQuery, Spark, Trino) read:
//
//	Arrow                      Parquet
//	utf8                       BYTE_ARRAY  STRING
//	timestamp[us, tz=UTC]      INT64       TIMESTAMP(isAdjustedToUTC=true, MICROS)
//	date32                     INT32       DATE
//	decimal128(p<=18, s)       INT64       DECIMAL(p, s)  (INT32 when p <= 9)
//	bool                       BOOLEAN
//	int64                      INT64
//
// Timestamps are never written as INT96 or NANOS (design invariant 7) and
// decimals are copied as exact scaled integers, never through float64
// (invariant 8). Any other Arrow type is rejected with ErrUnsupportedType.
//
// Files are laid out for lookups: rows are cut into row groups of
// DefaultRowGroupRows, each column chunk carries min/max statistics and a page
// index, and id, user_id and account_id carry a bloom filter per row group
// (DefaultBloomFilterColumns), so a reader looking up one id, user or account
// skips the row groups that cannot hold it.
//
// Write is deterministic: equal schemas, records and options give
// byte-identical files. The file carries no clock reading, the created_by
// string is fixed (CreatedBy) and key-value metadata is sorted by key. The
// pipeline relies on this to skip rewriting and re-uploading unchanged
// partitions (invariant 4).
//
// ReadRanged decodes some columns of a file read by byte range through a
// RangeFunc (a bucket's ranged read, say): the footer, then only the chunks of
// those columns, so that reading the id column of a partition costs its footer
// and id chunks, not the whole file. The FileSchema option reports all of a
// file's columns while only some are decoded. ReadMetadataRanged reads only the
// footer that way.
//
// The package holds no state, does no I/O other than on the io.Writer,
// io.ReaderAt or RangeFunc it is given, and knows nothing about datasets,
// partitions or buckets; those belong to the pipeline and sinks/bucket.
package parquet
