// Package buckettest owns the acceptance suite for bucket.Bucket: one set of
// behavioural tests that every implementation (Memory, Local, GCS against
// fake-gcs-server) must pass, so that the pipeline can rely on the contract
// written on the interface rather than on any one store.
package buckettest
