package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// cmdVerify checks a dataset and prints its problems; exit 1 when there are any.
func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer, _ env) int {
	fs := flag.NewFlagSet("extract verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the dataset: a directory or gs://BUCKET/PREFIX (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "extract verify: --out is required and takes no arguments")
		return exitUsage
	}
	b, err := openBucket(ctx, *out)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitUsage
	}
	rep, err := pipeline.Verify(ctx, b)
	if err != nil {
		fmt.Fprintln(stderr, "extract verify:", err)
		return exitFailed
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "problem:", p)
	}
	fmt.Fprintf(stdout, "%s: %d objects, %d manifests, %d transactions, %d problem(s)\n",
		b, rep.Objects, rep.Manifests, rep.Transactions, len(rep.Problems))
	if !rep.OK() {
		return exitPartial
	}
	return exitOK
}

// cmdPurge removes a user's or an account's rows from every dataset.
func cmdPurge(ctx context.Context, args []string, stdout, stderr io.Writer, _ env) int {
	fs := flag.NewFlagSet("extract purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the dataset: a directory or gs://BUCKET/PREFIX (required)")
	user := fs.String("user", "", "purge every row of this Akahu user id (user_…)")
	account := fs.String("account", "", "purge every row of this account id (acc_…)")
	shards := fs.Int("shards", 0, "the dataset's shard count (default: read from the dataset; the purge takes every shard's lock)")
	reason := fs.String("reason", "requested", "why, recorded in the purge manifest")
	lockWait := fs.Duration("lock-wait", pipeline.DefaultLockWait, "how long to wait for a run writing the dataset")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "extract purge: --out is required and takes no arguments")
		return exitUsage
	}
	b, err := openBucket(ctx, *out)
	if err != nil {
		fmt.Fprintln(stderr, "extract purge:", err)
		return exitUsage
	}
	m, err := pipeline.Purge(ctx, pipeline.PurgeConfig{Out: b, UserID: *user, AccountID: *account,
		Shards: *shards, Reason: *reason, ToolVersion: version(), LockWait: *lockWait})
	if err != nil {
		fmt.Fprintln(stderr, "extract purge:", err)
		if isConfig(err) {
			return exitUsage
		}
		return exitFailed
	}
	p := m.Purge
	fmt.Fprintf(stdout, "purge %s of %s %s: removed %d transaction, %d pending, %d account and %d deletion rows; %d objects rewritten, %d manifests redacted\n",
		m.RunID, p.Scope, p.ID, p.Rows["transactions"], p.Rows["pending"], p.Rows["accounts"], p.Rows["deletions"], len(m.Objects), p.Manifests)
	return exitOK
}
