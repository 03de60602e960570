package pipeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

func TestTaskShards(t *testing.T) {
	for _, c := range []struct {
		task, tasks, shards int
		want                []int
	}{
		{0, 1, 1, []int{0}},
		{0, 1, 3, []int{0, 1, 2}},
		{1, 4, 40, []int{1, 5, 9, 13, 17, 21, 25, 29, 33, 37}},
		{1, 2, 5, []int{1, 3}},
		{0, 2, 5, []int{0, 2, 4}},
		{3, 4, 4, []int{3}},
		{4, 4, 8, nil}, // no such task
		{0, 0, 8, nil},
	} {
		if got := pipeline.TaskShards(c.task, c.tasks, c.shards); !slices.Equal(got, c.want) {
			t.Errorf("TaskShards(%d, %d, %d) = %v, want %v", c.task, c.tasks, c.shards, got, c.want)
		}
	}
}

// TestRunShardsStops: RunShards runs the shards in order, each a run of its own, and
// stops when done says so.
func TestRunShardsStops(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 6, 1
	h := newHarness(t, b, opts)
	cfg := h.config(h.opts.From, h.opts.To)
	cfg.Buckets, cfg.Shards = 4, 4
	var ran []int
	pipeline.RunShards(context.Background(), cfg, []int{3, 1, 2}, func(shard int, m *pipeline.Manifest, err error) bool {
		if err != nil || m == nil || m.Shard != shard {
			t.Errorf("shard %d: manifest %v, error %v", shard, m != nil, err)
		}
		ran = append(ran, shard)
		return len(ran) < 2
	})
	if !slices.Equal(ran, []int{3, 1}) {
		t.Errorf("ran shards %v, want 3 then 1 (done stopped it)", ran)
	}
}

// TestShardWithoutBucketWarns: a shard whose index is at least the dataset's bucket
// count owns no bucket; its run commits, extracts nothing and says why.
func TestShardWithoutBucketWarns(t *testing.T) {
	b := newLocal(t)
	opts := smallPopulation()
	opts.Users, opts.AccountsPerUser = 4, 1
	h := newHarness(t, b, opts)
	for shard := range 3 {
		var logs bytes.Buffer
		cfg := h.config(h.opts.From, h.opts.To)
		cfg.Buckets, cfg.Shards, cfg.Shard = 2, 3, shard
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		m, err := pipeline.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		warned := strings.Contains(logs.String(), "owns no bucket")
		if want := shard >= 2; warned != want || (want && m.Counts.Inserted != 0) {
			t.Errorf("shard %d of 3 over 2 buckets: warned %v, inserted %d; want a warning %v (and nothing inserted)", shard, warned, m.Counts.Inserted, want)
		}
	}
	h.expectFaithful(h.opts.From, h.opts.To)
}
