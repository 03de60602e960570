// Package gcs owns the Google Cloud Storage implementation of bucket.Bucket,
// on cloud.google.com/go/storage over the JSON API.
//
// Every write is a conditional request: an upload carries the caller's
// precondition or, for an unconditional Put, the generation read just
// before, as ifGenerationMatch; a delete carries the generation read just
// before. A request that fails transiently (HTTP 408, 429, 5xx, a timeout, or
// a connection that broke before the answer: EOF, reset, closed) is sent
// again by the Bucket itself, up to DefaultAttempts times with backoff; the
// client library's own retries are off. Such a write may have been applied
// although its answer was lost, so a retried upload can meet its own earlier
// write as a failed precondition (412): on a 412, and after the last
// attempt, Put reads the object back and succeeds if the stored version is
// its own write, recognised by the random write id every upload carries in
// its custom metadata ("write-id") together with its size and CRC32C and, on
// GenerationMatch, a generation newer than the condition's. Another writer's
// version, even of the same bytes, is ErrConflict, so of racing writers
// exactly one succeeds. Likewise a delete retried after a lost answer that
// finds the object gone has succeeded. The CRC32C of the bytes is sent with
// the upload and checked against what GCS stored.
//
// A ranged read (GetRange) of a given generation asks for that generation and
// makes it a precondition (ifGenerationMatch), so a generation that is no longer
// current fails (ErrConflict) rather than being served from a noncurrent version;
// its bytes are not checked against the object's CRC32C, which covers the whole
// object.
//
// Failures are mapped to the bucket package's error classes (ErrNotFound,
// ErrConflict, ErrPermission, ErrTransient); callers never see SDK error
// types. Credentials are Application Default Credentials, and
// STORAGE_EMULATOR_HOST is honoured by the official client.
package gcs
