package pipeline

import (
	"context"
	"sync"
)

// stateReads is how many state objects a run reads at once: a shard reads every
// bucket's users object and every shard's resolved object, one GET each, and on GCS
// a GET's latency, not its bytes, is their cost.
const stateReads = 16

// inOrder calls read(ctx, i) for each i in [0, n), at most width at once, and
// hands each result to use in the order of i as soon as it and every earlier one
// are read: at most width results wait at once. On the first error (by i) it
// cancels the reads under way, waits for them and returns that error; use is not
// called again. use runs on the caller's goroutine.
func inOrder[T any](ctx context.Context, n, width int, read func(ctx context.Context, i int) (T, error), use func(i int, v T)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type slot struct {
		v    T
		err  error
		done chan struct{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make([]*slot, n)
	launched := 0
	for next := range n {
		for ; launched < n && launched < next+max(width, 1); launched++ {
			s := &slot{done: make(chan struct{})}
			slots[launched] = s
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer close(s.done)
				s.v, s.err = read(ctx, i)
			}(launched)
		}
		s := slots[next]
		<-s.done
		slots[next] = nil
		if s.err != nil {
			return s.err
		}
		use(next, s.v)
	}
	return nil
}
