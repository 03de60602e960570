package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// The shard count of a dataset is recorded in _dataset.json ("shards"): lock objects
// are named by it, but in-flight markers and manifests carry only the shard index in
// their run id, so runs with different counts on one dataset would take each other's
// live markers for crashed runs. Every run checks its --shards against the recorded
// count under its lock; Reshard changes the count while holding every lock of the old
// and the new count, so the count cannot change under a running shard.

// datasetShards returns _dataset.json's fields and generation, and the dataset's shard
// count: the recorded one, or for a dataset written before the count was recorded, the
// count of its newest committed run (0 when none committed yet; recorded is false).
func datasetShards(ctx context.Context, b bucket.Bucket) (fields map[string]json.RawMessage, gen int64, shards int, recorded bool, err error) {
	data, attrs, err := b.Get(ctx, datasetObject)
	if err != nil {
		return nil, 0, 0, false, fmt.Errorf("read %s in %s: %w", datasetObject, b, err)
	}
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, 0, 0, false, fmt.Errorf("%w: %s: %v", ErrCorrupt, datasetObject, err)
	}
	if raw, ok := fields["shards"]; ok {
		if err := json.Unmarshal(raw, &shards); err != nil || shards < 1 {
			return nil, 0, 0, false, fmt.Errorf("%w: %s: shards %s", ErrCorrupt, datasetObject, raw)
		}
		return fields, attrs.Generation, shards, true, nil
	}
	shards, err = newestRunShards(ctx, b, time.Now()) // the clock only picks the first window
	return fields, attrs.Generation, shards, false, err
}

// newestRunShards returns the shard count of the newest committed run, or 0.
func newestRunShards(ctx context.Context, b bucket.Bucket, now time.Time) (int, error) {
	m, err := newestManifest(ctx, b, now, func(string) bool { return true },
		func(m *Manifest) bool { return m.Kind == "run" && m.Shards > 0 })
	if m == nil || err != nil {
		return 0, err
	}
	return m.Shards, nil
}

// recordShards writes the shard count into _dataset.json, keeping its other fields,
// on condition that it is still generation gen.
func recordShards(ctx context.Context, b bucket.Bucket, fields map[string]json.RawMessage, gen int64, shards int) error {
	out := make(map[string]json.RawMessage, len(fields)+1)
	for k, v := range fields {
		out[k] = v
	}
	out["shards"] = json.RawMessage(fmt.Sprint(shards))
	data, _ := json.MarshalIndent(out, "", "  ")
	if _, err := b.Put(ctx, datasetObject, data, bucket.Condition{GenerationMatch: gen}); err != nil {
		return fmt.Errorf("record the shard count in %s: %w", datasetObject, err)
	}
	return nil
}

// shardConflict is the error of a run whose --shards is not the dataset's.
func shardConflict(have, want int) error {
	return fmt.Errorf("%w: %w: %s; this run asked for --shards %d "+
		"(run every shard with --shards %d, or change the dataset's shard count with "+
		"'extract reshard --out DATASET --shards %d', which waits for every running shard)",
		ErrConfig, ErrDatasetMismatch, shardedWays(have), want, have, want)
}

func shardedWays(n int) string {
	if n == 1 {
		return "dataset is not sharded (--shards 1)"
	}
	return fmt.Sprintf("dataset is sharded %d ways", n)
}

// checkShards checks the run's shard count against the dataset's. It runs under the
// shard's lock: a reshard holds every lock, so the count cannot change until the run
// releases it. A dataset that does not record its count yet gets it here (the count of
// its newest run, or this run's when none committed), written with a generation
// condition, so of two runs with different counts only one can set it.
func (r *runner) checkShards(ctx context.Context) error {
	for {
		fields, gen, have, recorded, err := datasetShards(ctx, r.b)
		if err != nil {
			return err
		}
		if have == 0 {
			have = r.cfg.Shards
		}
		if have != r.cfg.Shards {
			return shardConflict(have, r.cfg.Shards)
		}
		if recorded {
			r.ds.Shards = have
			return nil
		}
		err = recordShards(ctx, r.b, fields, gen, have)
		if err == nil {
			r.ds.Shards = have
			return nil
		}
		if !errors.Is(err, bucket.ErrConflict) {
			return err
		}
	}
}

// ReshardConfig configures Reshard.
type ReshardConfig struct {
	Out bucket.Bucket
	// Shards is the new shard count.
	Shards      int
	LockWait    time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	BeforeWrite func(string)
}

// Reshard changes the dataset's shard count and returns the old one. It takes every
// lock of the old and the new count (so it waits for every running shard), refuses
// while a crashed run of the old count is unrecovered (its in-flight marker is matched
// by shard index: run the old count once first), then records the new count. It
// refuses more shards than the dataset has buckets (a shard owns whole buckets: the
// extra shards would own none). A shard's first run under the new count continues
// each of its accounts from its covered_through: the state is kept per bucket.
func Reshard(ctx context.Context, cfg ReshardConfig) (int, error) {
	if cfg.Out == nil || cfg.Shards < 1 {
		return 0, fmt.Errorf("%w: reshard needs an output and --shards of 1 or more", ErrConfig)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Out = bucket.WithHook(cfg.Out, cfg.BeforeWrite) // every write point, for crash tests
	fields, _, old, _, err := datasetShards(ctx, cfg.Out)
	if err != nil {
		return 0, err
	}
	var buckets int
	if raw, ok := fields["buckets"]; ok && json.Unmarshal(raw, &buckets) == nil && buckets >= 1 && cfg.Shards > buckets {
		return 0, fmt.Errorf("%w: reshard --shards %d: the dataset has %d bucket(s), and a shard owns whole buckets, so %d shard(s) would own none; use at most %d shards (a divisor of %d spreads the buckets evenly)",
			ErrConfig, cfg.Shards, buckets, cfg.Shards-buckets, buckets, buckets)
	}
	if old == 0 {
		old = cfg.Shards
	}
	names := map[string]bool{}
	for i := range old {
		names[lockObject(i, old)] = true
	}
	for i := range cfg.Shards {
		names[lockObject(i, cfg.Shards)] = true
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	runID := newRunID(cfg.Now(), 0, hex.EncodeToString(rnd[:]))
	b, release, err := acquireAll(ctx, cfg.Out, sortedKeys(names), runID, cfg.LockWait, cfg.Now)
	if err != nil {
		return 0, err
	}
	defer release()
	fields, gen, have, recorded, err := datasetShards(ctx, b)
	if err != nil {
		return 0, err
	}
	if have == 0 {
		have = old
	}
	if have != old {
		return 0, fmt.Errorf("reshard: the dataset's shard count changed from %d to %d while waiting for the locks; run it again", old, have)
	}
	if have == cfg.Shards {
		if !recorded {
			if err := recordShards(ctx, b, fields, gen, cfg.Shards); err != nil {
				return 0, err
			}
		}
		// A reshard that failed after recording the count is finished by running it
		// again: its resolved objects are folded here.
		return old, foldResolved(ctx, b, cfg.Shards)
	}
	list, err := b.List(ctx, inflightPrefix)
	if err != nil {
		return 0, fmt.Errorf("list in-flight markers: %w", err)
	}
	for _, a := range list {
		if id, ok := runIDOfObject(a.Name, inflightPrefix); ok {
			return 0, fmt.Errorf("%w: run %s did not finish (%s): run shard %d with --shards %d once to recover it, then reshard",
				ErrDatasetMismatch, id, a.Name, runShard(id), old)
		}
	}
	if err := recordShards(ctx, b, fields, gen, cfg.Shards); err != nil {
		return 0, err
	}
	if err := foldResolved(ctx, b, cfg.Shards); err != nil {
		return 0, fmt.Errorf("reshard: the count is now %d, but the old resolved objects were not folded (run the reshard again): %w", cfg.Shards, err)
	}
	cfg.Logger.Info("resharded", "from", old, "to", cfg.Shards)
	return old, nil
}

// foldResolved moves the lines of the resolved objects other shard counts wrote into
// shard 0's resolved object of shards, and deletes them. Every run reads every
// resolved object, whatever its count, but only the shard that wrote one prunes it,
// and no shard of another count runs any more: without the fold, what they name would
// be read by every run for ever. Shard 0 prunes what it receives as it prunes its own
// (the lines the owners' users objects name). With one shard no resolved object is
// read, so they are deleted. Reshard calls it under every lock of the old and the new
// count; a line of shard 0's object wins over a folded one.
func foldResolved(ctx context.Context, b bucket.Bucket, shards int) error {
	suffix := fmt.Sprintf("-of-%03d.users.jsonl.gz", shards)
	into := resolvedObject(0, shards)
	type stale struct {
		name string
		gen  int64
	}
	var old []stale
	folded, own := map[string]StateUser{}, map[string]StateUser{}
	var intoGen int64
	err := readResolved(ctx, b, nil, func(name string, gen, _ int64, users map[string]StateUser) {
		switch {
		case name == into:
			own, intoGen = users, gen
		case strings.HasSuffix(name, suffix):
		default:
			old = append(old, stale{name, gen})
			for fp, u := range users {
				if _, ok := folded[fp]; !ok {
					folded[fp] = u
				}
			}
		}
	})
	if err != nil || len(old) == 0 {
		return err
	}
	maps.Copy(folded, own)
	if shards > 1 && len(folded) > len(own) {
		cond := bucket.Condition{DoesNotExist: true}
		if intoGen != 0 {
			cond = bucket.Condition{GenerationMatch: intoGen}
		}
		if _, err := b.Put(ctx, into, encodeUserLines(folded), cond); err != nil {
			return fmt.Errorf("write %s: %w", into, err)
		}
	}
	for _, o := range old {
		if err := b.Delete(ctx, o.name, bucket.Condition{GenerationMatch: o.gen}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", o.name, err)
		}
	}
	return nil
}

// acquireAll takes the named locks in order and returns the bucket to write through
// while they are held, and a function releasing them.
func acquireAll(ctx context.Context, b bucket.Bucket, names []string, runID string, wait time.Duration, now func() time.Time) (*leasedBucket, func(), error) {
	g := &leasedBucket{Bucket: b}
	release := func() {
		for i := len(g.leases) - 1; i >= 0; i-- {
			_ = g.leases[i].release(context.WithoutCancel(ctx))
		}
	}
	for _, n := range names {
		l, err := acquireLock(ctx, b, n, runID, DefaultLockTTL, wait, now)
		if err != nil {
			release()
			return nil, nil, err
		}
		g.leases = append(g.leases, l)
	}
	return g, release, nil
}
