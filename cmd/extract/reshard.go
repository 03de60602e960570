package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// cmdReshard changes the dataset's shard count (recorded in _dataset.json). It waits
// for every running shard of the old and the new count, so no run ever writes with a
// count other than the dataset's.
func cmdReshard(ctx context.Context, args []string, stdout, stderr io.Writer, _ env) int {
	fs := flag.NewFlagSet("extract reshard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the dataset: a directory or gs://BUCKET/PREFIX (required)")
	shards := fs.Int("shards", 0, "the new shard count (required)")
	lockWait := fs.Duration("lock-wait", pipeline.DefaultLockWait, "how long to wait for runs writing the dataset")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || *shards < 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "extract reshard: --out and --shards N (1 or more) are required; it takes no arguments")
		return exitUsage
	}
	b, err := openBucket(ctx, *out)
	if err != nil {
		fmt.Fprintln(stderr, "extract reshard:", err)
		return exitUsage
	}
	old, err := pipeline.Reshard(ctx, pipeline.ReshardConfig{Out: b, Shards: *shards, LockWait: *lockWait})
	if err != nil {
		fmt.Fprintln(stderr, "extract reshard:", err)
		if isConfig(err) {
			return exitUsage
		}
		return exitFailed
	}
	if old == *shards {
		fmt.Fprintf(stdout, "%s is sharded %d ways already\n", b, old)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: shard count changed from %d to %d; run every shard with --shards %d. "+
		"Each shard's first run continues every account from where the state says it is complete.\n", b, old, *shards, *shards)
	return exitOK
}
