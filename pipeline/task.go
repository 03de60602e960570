package pipeline

import (
	"context"
	"runtime/debug"
)

// TaskShards returns the shards task runs of a job of shards shards run as tasks
// tasks: task, task+tasks, … (none when task is out of range).
func TaskShards(task, tasks, shards int) []int {
	var out []int
	if tasks < 1 || task < 0 || task >= tasks {
		return nil
	}
	for s := task; s < shards; s += tasks {
		out = append(out, s)
	}
	return out
}

// RunShards runs cfg for each of shards, one after another, as one task of a fleet
// job: each is a run of its own (lock, marker, manifest, commit), and done is called
// with each run's shard, manifest and error (Run's) as it ends; RunShards stops early
// when done returns false or ctx ends. The runs share a StateCache (cfg.StateCache,
// or a new one), and between runs the process's freed memory goes back to the
// system, so a task's memory is one shard run's whatever the number of shards. With
// several shards, each run logs with a "shard" attribute.
func RunShards(ctx context.Context, cfg Config, shards []int, done func(shard int, m *Manifest, err error) bool) {
	if cfg.StateCache == nil && len(shards) > 1 {
		cfg.StateCache = NewStateCache()
	}
	logger := cfg.Logger
	for i, shard := range shards {
		if ctx.Err() != nil {
			return
		}
		if i > 0 {
			// The previous run's records are garbage: collect them now, so that the
			// next run's heap grows from what is live (the cache), not from the
			// previous run's peak.
			debug.FreeOSMemory()
		}
		cfg.Shard = shard
		if logger != nil && len(shards) > 1 {
			cfg.Logger = logger.With("shard", shard)
		}
		m, err := Run(ctx, cfg)
		if !done(shard, m, err) {
			return
		}
	}
}
