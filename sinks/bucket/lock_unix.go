//go:build unix

package bucket

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// flockFile opens (creating) path and takes an exclusive flock on it,
// polling so that ctx can end the wait. The lock is released by closing the
// file, which release does; a killed process releases it too.
func flockFile(ctx context.Context, path string) (release func(), err error) {
	return flockWait(ctx, path, syscall.LOCK_EX)
}

// flockShared is flockFile with a shared lock: any number of holders at once,
// none while someone holds the exclusive lock.
func flockShared(ctx context.Context, path string) (release func(), err error) {
	return flockWait(ctx, path, syscall.LOCK_SH)
}

func flockWait(ctx context.Context, path string, how int) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	wait := 50 * time.Microsecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}
