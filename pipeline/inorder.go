package pipeline

import (
	"context"

	"github.com/sourcegraph/conc/stream"
)

// stateReads is how many state objects a run reads at once: a shard reads every
// bucket's users object and every shard's resolved object, one GET each, and on GCS
// a GET's latency, not its bytes, is their cost.
const stateReads = 16

// inOrder calls read(ctx, i) for each i in [0, n), at most width at once, and
// hands each result to use in the order of i (a conc stream: about width results
// wait at once). On the first error (by i) it cancels the reads under way and
// returns that error once they are over; use is not called again. Calls of use do
// not overlap, and all are over when inOrder returns.
func inOrder[T any](ctx context.Context, n, width int, read func(ctx context.Context, i int) (T, error), use func(i int, v T)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error // the stream's callbacks', until Wait returns
	s := stream.New().WithMaxGoroutines(max(width, 1))
	began := 0
	for i := 0; i < n && ctx.Err() == nil; i++ {
		began++
		s.Go(func() stream.Callback {
			v, rerr := read(ctx, i)
			return func() {
				switch {
				case err != nil:
				case rerr != nil:
					err = rerr
					cancel()
				default:
					use(i, v)
				}
			}
		})
	}
	s.Wait()
	if err == nil && began < n {
		err = ctx.Err() // the caller's context ended before every read began
	}
	return err
}
