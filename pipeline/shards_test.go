package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// shardedRun runs shard i of n.
func shardedRun(h *harness, from, to time.Time, i, n int) (*pipeline.Manifest, error) {
	cfg := h.config(from, to)
	cfg.Shard, cfg.Shards, cfg.Buckets = i, n, 4
	cfg.LockWait = 0
	return pipeline.Run(context.Background(), cfg)
}

func putJSON(t *testing.T, b bucket.Bucket, name string, v any) {
	t.Helper()
	data, _ := json.Marshal(v)
	if _, err := b.Put(context.Background(), name, data, bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
}

func exists(b bucket.Bucket, name string) bool {
	_, err := b.Attrs(context.Background(), name)
	return err == nil
}

func datasetField(t *testing.T, b bucket.Bucket, field string) (json.RawMessage, bool) {
	t.Helper()
	data, _, err := b.Get(context.Background(), "_dataset.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	v, ok := m[field]
	return v, ok
}

func expectShardConflict(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	if !errors.Is(err, pipeline.ErrConfig) {
		t.Errorf("%s: err %v, want a configuration error (exit 2)", what, err)
		return
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error does not say %q: %v", what, w, err)
		}
	}
}

// TestShardCountIsTheDatasets: a dataset written by a 4-way job refuses runs and
// purges with another shard count, naming the conflict and the way to change it, so a
// one-off --shards 1 run can never take shard 0's live in-flight marker for a crashed
// run. A dataset written before the count was recorded gets it from its manifests.
// Reshard changes it only while it can take every lock and no crashed run is pending.
func TestShardCountIsTheDatasets(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	for i := range 4 {
		if _, err := shardedRun(h, from, to, i, 4); err != nil {
			t.Fatalf("shard %d of 4: %v", i, err)
		}
	}
	manifests := func() int { l, _ := b.List(ctx, "_manifests/"); return len(l) }

	// Shard 0 of the 4-way job is running: it holds its lock and has written its marker.
	live := "20270101T000000.000Z-s000-live00"
	lock := "_locks/shard-000-of-004.json"
	marker := "_inflight/" + live + ".json"
	putJSON(t, b, lock, map[string]any{"run_id": live, "host": "task-0", "pid": 1,
		"acquired_at": time.Now().UTC(), "expires_at": time.Now().Add(time.Hour).UTC()})
	putJSON(t, b, marker, map[string]any{"run_id": live, "shard": 0, "shards": 4, "started_at": time.Now().UTC()})

	before := manifests()
	_, err := shardedRun(h, from, to, 0, 1)
	expectShardConflict(t, "--shards 1 beside a 4-way job", err, "sharded 4 ways", "--shards 1", "extract reshard")
	if !exists(b, marker) {
		t.Fatal("the one-off run removed the running shard's in-flight marker")
	}
	if manifests() != before {
		t.Fatal("a refused run committed")
	}

	// A purge takes every lock of the dataset's count: it waits for shard 0.
	_, err = pipeline.Purge(ctx, pipeline.PurgeConfig{Out: b, UserID: h.srv.Users()[0].ID, LockWait: time.Millisecond})
	if !errors.Is(err, pipeline.ErrLocked) || !strings.Contains(err.Error(), lock) {
		t.Errorf("purge while shard 0 runs: %v, want ErrLocked naming %s", err, lock)
	}
	_, err = pipeline.Purge(ctx, pipeline.PurgeConfig{Out: b, UserID: h.srv.Users()[0].ID, Shards: 1, LockWait: time.Millisecond})
	expectShardConflict(t, "purge --shards 1", err, "sharded 4 ways")

	// Reshard waits for the running shard, then for its recovery.
	_, err = pipeline.Reshard(ctx, pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Millisecond})
	if !errors.Is(err, pipeline.ErrLocked) {
		t.Errorf("reshard while shard 0 runs: %v, want ErrLocked", err)
	}
	if err := b.Delete(ctx, lock, bucket.Condition{}); err != nil { // shard 0 died
		t.Fatal(err)
	}
	_, err = pipeline.Reshard(ctx, pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), live) || !strings.Contains(err.Error(), "--shards 4") {
		t.Errorf("reshard with a crashed run pending: %v, want a refusal naming the run and --shards 4", err)
	}
	if _, err := shardedRun(h, from, to, 0, 4); err != nil { // recovers it
		t.Fatalf("shard 0 of 4 after a crash: %v", err)
	}
	if exists(b, marker) {
		t.Fatal("the crashed run's marker is still there")
	}

	// A dataset written before the count was recorded: it comes from the manifests.
	data, _, _ := b.Get(ctx, "_dataset.json")
	var ds map[string]any
	_ = json.Unmarshal(data, &ds)
	delete(ds, "shards")
	putJSON(t, b, "_dataset.json", ds)
	_, err = shardedRun(h, from, to, 1, 2)
	expectShardConflict(t, "--shards 2 on an older 4-way dataset", err, "sharded 4 ways", "--shards 2")
	if _, err := shardedRun(h, from, to, 1, 4); err != nil {
		t.Fatalf("shard 1 of 4 on an older dataset: %v", err)
	}
	if v, ok := datasetField(t, b, "shards"); !ok || string(v) != "4" {
		t.Errorf("_dataset.json shards = %s (present %v), want 4 recorded by the run", v, ok)
	}

	old, err := pipeline.Reshard(ctx, pipeline.ReshardConfig{Out: b, Shards: 2, LockWait: time.Millisecond})
	if err != nil || old != 4 {
		t.Fatalf("reshard 4 → 2: old %d, %v", old, err)
	}
	_, err = shardedRun(h, from, to, 3, 4)
	expectShardConflict(t, "--shards 4 after the reshard", err, "sharded 2 ways", "--shards 4")
	for i := range 2 {
		if _, err := shardedRun(h, from, to, i, 2); err != nil {
			t.Fatalf("shard %d of 2: %v", i, err)
		}
	}
	if l, _ := b.List(ctx, "_locks/"); len(l) > 0 {
		t.Errorf("locks left: %v", l)
	}
	h.expectFaithful(from, to)
}

// TestFirstRunsWithDifferentShardCounts: two first runs with different shard counts
// start on an empty dataset at once; exactly one count is recorded and the other run is
// refused.
func TestFirstRunsWithDifferentShardCounts(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []int{1, 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = shardedRun(h, from, to, 0, n)
		}()
	}
	wg.Wait()
	refused := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, pipeline.ErrConfig) && strings.Contains(err.Error(), "this run asked for --shards"):
			refused++
		default:
			t.Errorf("run: %v", err)
		}
	}
	if refused != 1 {
		t.Errorf("%d runs refused (%v), want exactly one", refused, errs)
	}
}

// TestReshardRefusesMoreShardsThanBuckets: a shard owns whole buckets, so a reshard
// to more shards than the dataset has buckets is refused (ErrConfig, naming both
// counts), and the count stays; up to the bucket count it goes through.
func TestReshardRefusesMoreShardsThanBuckets(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	for i := range 2 {
		if _, err := shardedRun(h, h.opts.From, h.opts.To, i, 2); err != nil { // 4 buckets
			t.Fatalf("shard %d of 2: %v", i, err)
		}
	}
	_, err := pipeline.Reshard(ctx, pipeline.ReshardConfig{Out: b, Shards: 6, LockWait: time.Millisecond})
	if !errors.Is(err, pipeline.ErrConfig) || !strings.Contains(err.Error(), "--shards 6") || !strings.Contains(err.Error(), "4 bucket(s)") {
		t.Fatalf("reshard 2 → 6 over 4 buckets: %v; want ErrConfig naming --shards 6 and the 4 buckets", err)
	}
	if v, _ := datasetField(t, b, "shards"); string(v) != "2" {
		t.Errorf("after the refused reshard the dataset records shards %s; want 2", v)
	}
	if l, _ := b.List(ctx, "_locks/"); len(l) > 0 {
		t.Errorf("the refused reshard left locks: %v", l)
	}
	if old, err := pipeline.Reshard(ctx, pipeline.ReshardConfig{Out: b, Shards: 4, LockWait: time.Millisecond}); err != nil || old != 2 {
		t.Fatalf("reshard 2 → 4 over 4 buckets: old %d, %v", old, err)
	}
	for i := range 4 {
		if _, err := shardedRun(h, h.opts.From, h.opts.To, i, 4); err != nil {
			t.Fatalf("shard %d of 4: %v", i, err)
		}
	}
	h.expectFaithful(h.opts.From, h.opts.To)
}
