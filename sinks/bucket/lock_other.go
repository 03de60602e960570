//go:build !unix

package bucket

import "context"

// flockFile is a no-op where flock does not exist: writers in one process
// are still serialised by Local's in-process lock, but two processes sharing
// a directory are not.
func flockFile(ctx context.Context, path string) (release func(), err error) {
	return func() {}, nil
}

// flockShared is a no-op where flock does not exist.
func flockShared(ctx context.Context, path string) (release func(), err error) {
	return func() {}, nil
}
