package pipeline

import (
	"context"

	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/semaphore"
)

// uploads runs encoded objects' writes in the background, up to DefaultUploads at
// once holding up to DefaultUploadBytes of encoded bytes (a larger object waits
// until it is alone), so that whoever encodes goes on encoding while the bucket
// answers. The first failed write cancels the context the uploads were made with
// (stop) and is what wait returns.
type uploads struct {
	ctx    context.Context
	cancel context.CancelFunc // the uploads' own context
	stop   context.CancelFunc // called when a write fails
	p      *pool.ContextPool
	bytes  *semaphore.Weighted
}

// newUploads returns uploads under ctx; stop is called when a write fails (nil: the
// uploads' own cancel).
func newUploads(ctx context.Context, stop context.CancelFunc) *uploads {
	ctx, cancel := context.WithCancel(ctx)
	if stop == nil {
		stop = cancel
	}
	return &uploads{ctx: ctx, cancel: cancel, stop: stop,
		p: pool.New().WithErrors().WithFirstError().WithContext(ctx).WithMaxGoroutines(DefaultUploads), bytes: semaphore.NewWeighted(DefaultUploadBytes)}
}

// add starts write, of an object of size encoded bytes, once there is room; it
// returns an error only when the uploads were cancelled meanwhile.
func (u *uploads) add(size int64, write func(context.Context) error) error {
	n := min(size, DefaultUploadBytes)
	if err := u.bytes.Acquire(u.ctx, n); err != nil {
		return err
	}
	u.p.Go(func(ctx context.Context) error {
		defer u.bytes.Release(n)
		err := write(ctx)
		if err != nil {
			u.cancel()
			u.stop()
		}
		return err
	})
	return nil
}

// wait waits for every write started and returns the first that failed.
func (u *uploads) wait() error {
	defer u.cancel()
	return u.p.Wait()
}
