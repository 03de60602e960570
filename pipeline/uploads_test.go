package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// TestWritesOverlapMerges: a merged partition's write does not hold up its merger.
// With a bucket that takes 200 ms to answer each read and write of a partition,
// more partitions are written at once than there are mergers (which alone would
// write DefaultMergers at a time), never more than DefaultUploads, and the dataset
// is what Akahu serves.
func TestWritesOverlapMerges(t *testing.T) {
	slow := &pipeline.SlowBucket{Bucket: newLocal(t), Delay: 200 * time.Millisecond, Prefix: "transactions/"}
	opts := smallPopulation()
	opts.Users = 6
	h := newHarness(t, slow, opts)
	from, to := h.opts.From, h.opts.To
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	if err != nil {
		t.Fatal(err)
	}
	h.expectFaithful(from, to)
	seen := slow.Most()
	t.Logf("%d objects written, at most %d partition writes at once", m.Uploads.Objects, seen)
	if seen <= pipeline.DefaultMergers || seen > pipeline.DefaultUploads {
		t.Errorf("at most %d partition writes at once: want more than the %d mergers and at most %d", seen, pipeline.DefaultMergers, pipeline.DefaultUploads)
	}
}
