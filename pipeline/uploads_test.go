package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// slowPuts is a bucket whose writes of transactions partitions take delay to answer
// (as GCS takes tens of milliseconds), counting how many are under way at once.
type slowPuts struct {
	bucket.Bucket
	delay time.Duration

	mu           sync.Mutex
	now, maxSeen int
}

func (s *slowPuts) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	if !strings.HasPrefix(name, "transactions/") {
		return s.Bucket.Put(ctx, name, data, cond)
	}
	s.mu.Lock()
	s.now++
	s.maxSeen = max(s.maxSeen, s.now)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	time.Sleep(s.delay)
	return s.Bucket.Put(ctx, name, data, cond)
}

// TestWritesOverlapMerges: a merged partition's write does not hold up its merger.
// With a bucket that takes 200 ms to answer each partition write, more partitions
// are written at once than there are mergers (which alone would write
// DefaultMergers at a time), never more than DefaultUploads, and the dataset is
// what Akahu serves.
func TestWritesOverlapMerges(t *testing.T) {
	slow := &slowPuts{Bucket: newLocal(t), delay: 200 * time.Millisecond}
	opts := smallPopulation()
	opts.Users = 6
	h := newHarness(t, slow, opts)
	from, to := h.opts.From, h.opts.To
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	if err != nil {
		t.Fatal(err)
	}
	h.expectFaithful(from, to)
	slow.mu.Lock()
	seen := slow.maxSeen
	slow.mu.Unlock()
	t.Logf("%d objects written, at most %d partition writes at once", m.Uploads.Objects, seen)
	if seen <= pipeline.DefaultMergers || seen > pipeline.DefaultUploads {
		t.Errorf("at most %d partition writes at once: want more than the %d mergers and at most %d", seen, pipeline.DefaultMergers, pipeline.DefaultUploads)
	}
}
