// Package bucket owns the storage abstraction of the warehouse: one small
// Bucket interface that stores whole objects (Parquet files, manifests) by
// slash-separated name and reads them whole or by byte range (GetRange, pinned
// to a generation), the classes of error every implementation maps its
// failures to, name validation, and two implementations:
//
//   - Memory, an in-process map for tests;
//   - Local, a directory on disk with atomic temp-file+fsync+rename writes and
//     compare-and-swap on a per-object generation, guarded by a lock file so
//     that several processes may share one directory. Its SetFault seam
//     makes its file operations fail as on a full or read-only file system,
//     so callers' tests of those failures need no root to mount one.
//
// The Google Cloud Storage implementation lives in sinks/gcs. Every
// implementation must pass the acceptance suite in sinks/bucket/buckettest.
//
// Callers ask about failures through IsNotFound, IsConflict, IsPermission and
// IsTransient (or errors.Is with the sentinels in errors.go), never through an
// SDK's error types. This package imports nothing of the pipeline.
package bucket
