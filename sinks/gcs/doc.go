// Package gcs owns the Google Cloud Storage implementation of bucket.Bucket,
// on cloud.google.com/go/storage over the JSON API.
//
// Every write is a single conditional upload: the caller's precondition, or,
// for an unconditional Put, the generation read just before, is sent as
// ifGenerationMatch so that the client library's retry policy (which only
// retries idempotent, that is conditional, uploads) applies, and a retry of
// an upload that had in fact succeeded is recognised by its CRC32C and size.
// The CRC32C of the bytes is sent with the upload and checked against what
// GCS stored. Failures are mapped to the bucket package's error classes
// (ErrNotFound, ErrConflict, ErrPermission, ErrTransient); callers never see
// SDK error types. Credentials are Application Default Credentials, and
// STORAGE_EMULATOR_HOST is honoured by the official client.
package gcs
