package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// runFlags are the flags of 'extract run'.
type runFlags struct {
	out, start, end, accounts, tokensFile string
	lookback, history                     string
	workers, buckets, shard, shards       int
	tasks                                 int
	runShards                             []int // the shards this process runs, in turn (config)
	dryRun                                bool
	timeZone                              string
	rps                                   float64
	maxInFlight                           int
	logFormat, logLevel                   string
	lockWait                              time.Duration
	purgeRevoked, failOnRevoked           bool
	shardsSet                             bool // --shards was given
	shardSet                              bool // --shard was given
	refresh                               bool
	refreshWait                           time.Duration
	spillDir                              string
	accountWalks                          bool
	compareValues                         bool
}

func (f *runFlags) register(fs *flag.FlagSet, getenv env) {
	fs.StringVar(&f.out, "out", "", "output: a local directory or gs://BUCKET/PREFIX (required)")
	fs.StringVar(&f.start, "start", "", "first local date YYYY-MM-DD (default: last run's end minus --lookback)")
	fs.StringVar(&f.end, "end", "", "last local date YYYY-MM-DD, inclusive (default: today)")
	fs.StringVar(&f.accounts, "accounts", "", "comma-separated account ids to extract (default: all)")
	fs.StringVar(&f.tokensFile, "user-tokens-file", "", "file with one user token per line, optionally followed by its user id (instead of AKAHU_USER_TOKEN)")
	fs.StringVar(&f.lookback, "lookback", "30d", "with no --start: re-read this far before the last run's end")
	fs.StringVar(&f.history, "history", "730d", "on an empty dataset with no --start: how far back to read")
	fs.IntVar(&f.workers, "workers", pipeline.DefaultWorkers, "concurrent cursor walks")
	fs.IntVar(&f.buckets, "buckets", pipeline.DefaultBuckets, "files per partition (fixed when the dataset is created)")
	fs.IntVar(&f.shard, "shard", envInt(getenv, "CLOUD_RUN_TASK_INDEX", "JOB_COMPLETION_INDEX"), "run only this shard; without it, this task's index (default from CLOUD_RUN_TASK_INDEX or JOB_COMPLETION_INDEX)")
	fs.IntVar(&f.shards, "shards", max(1, envInt(getenv, "CLOUD_RUN_TASK_COUNT")), "number of shards (default from CLOUD_RUN_TASK_COUNT)")
	fs.IntVar(&f.tasks, "tasks", envInt(getenv, "CLOUD_RUN_TASK_COUNT"), "processes the job runs as (default from CLOUD_RUN_TASK_COUNT, else --shards): task i runs shards i, i+tasks, … one after another")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan (accounts, windows, partitions) and write nothing")
	fs.StringVar(&f.timeZone, "time-zone", schema.DefaultTimeZone, "dataset time zone for local dates and partitions")
	fs.Float64Var(&f.rps, "rps", 0, "Akahu requests per second for the whole job, split evenly across the tasks (0: no budget; each task finds the API's limit from 429s)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", akahu.DefaultMaxInFlight, "Akahu requests in flight across the run")
	fs.StringVar(&f.logFormat, "log-format", "auto", "auto (gcp under a Cloud Run Job, text on a terminal, JSON otherwise), text, json or gcp (Cloud Logging's fields: severity, message, labels)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.purgeRevoked, "purge-revoked", false, "delete the data of users whose token Akahu revoked (401) while other users were served; a 403 never purges")
	fs.BoolVar(&f.failOnRevoked, "fail-on-revoked", false, "exit 1 when any user's token is refused (revoked or forbidden); by default that is reported and the run exits 0")
	fs.DurationVar(&f.lockWait, "lock-wait", pipeline.DefaultLockWait, "how long to wait for another run writing the same dataset")
	fs.BoolVar(&f.refresh, "refresh", false, "before extracting, ask Akahu to fetch each user's data from the banks (POST /refresh) and wait for it (not in a dry run)")
	fs.DurationVar(&f.refreshWait, "refresh-wait", pipeline.DefaultRefreshWait, "with --refresh: how long to wait for the accounts to refresh; the others are extracted as they are, with a warning")
	fs.StringVar(&f.spillDir, "spill-dir", "", "local directory where extracted rows wait for the rest of their partition, and partitions held for the deletion checks wait for the end of the run, beyond their memory budgets (default: the system's temporary directory)")
	fs.BoolVar(&f.accountWalks, "account-walks", false, "walk every account on its own (a request per account at least) instead of one walk over all of a user's accounts")
	fs.BoolVar(&f.compareValues, "compare-values", false, "read every re-read partition whole and compare every value; by default a partition whose re-read rows all carry the stored updated_at is checked by range and left unread and unwritten (a change Akahu makes without advancing updated_at is picked up only with this flag)")
}

// parse parses args and notes which of the shard flags were given.
func (f *runFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) {
		f.shardsSet = f.shardsSet || fl.Name == "shards"
		f.shardSet = f.shardSet || fl.Name == "shard"
	})
	return nil
}

func envInt(getenv env, names ...string) int {
	for _, n := range names {
		if v := getenv(n); v != "" {
			if i, err := strconv.Atoi(v); err == nil {
				return i
			}
		}
	}
	return 0
}

// parseDays parses "30d" or "30" as a number of days.
func parseDays(flagName, s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "d"))
	if err != nil || n < 1 || n > 36500 {
		return 0, fmt.Errorf("--%s %q: want a number of days such as 30d", flagName, s)
	}
	return n, nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) int {
	fs := flag.NewFlagSet("extract run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs, getenv)
	if err := f.parse(fs, args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "extract run: unexpected argument %q (tokens are never taken from flags or arguments)\n", fs.Arg(0))
		return exitUsage
	}
	format, err := logFormat(f.logFormat, getenv, isTerminal(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "extract run:", err)
		return exitUsage
	}
	stderr, display := progressOut(stderr, isTerminal(stderr), format)
	log, err := newLogger(stderr, format, f.logLevel, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "extract run:", err)
		return exitUsage
	}
	cfg, client, err := f.config(ctx, getenv, log)
	if err != nil {
		fmt.Fprintln(stderr, "extract run:", err)
		return exitUsage
	}
	cfg.Source = client
	cfg.PlanOut = stdout
	cfg.Progress = display.report(client.Stats)
	if len(f.runShards) == 1 {
		return execute(ctx, cfg, stdout, stderr)
	}
	// A task of several shards runs them one after another: its memory is one
	// shard's, and the other shards' state objects are read once while unchanged.
	code := exitOK
	began := time.Now()
	pipeline.RunShards(ctx, cfg, f.runShards, func(shard int, m *pipeline.Manifest, err error) bool {
		c := report(cfg, m, err, time.Since(began), stdout, stderr)
		began = time.Now()
		if c == exitUsage {
			code = c // a configuration error is every shard's
			return false
		}
		code = max(code, c) // failed (3) over partial (1) over ok
		return true
	})
	if code == exitUsage {
		return code
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "extract: interrupted before every shard of the task ran:", ctx.Err())
		return max(code, exitFailed)
	}
	return code
}

// execute runs the pipeline and reports: a summary on stdout, one line per refused
// user and per failure on stderr, and the exit status. When stderr is the progress
// display, the run's progress line is ended before anything is reported.
func execute(ctx context.Context, cfg pipeline.Config, stdout, stderr io.Writer) int {
	begin := time.Now()
	m, err := pipeline.Run(ctx, cfg)
	return report(cfg, m, err, time.Since(begin), stdout, stderr)
}

// report reports a run that took took (see execute) and returns its exit status.
func report(cfg pipeline.Config, m *pipeline.Manifest, err error, took time.Duration, stdout, stderr io.Writer) int {
	if p, ok := stderr.(*progress); ok {
		p.end()
	}
	if cfg.DryRun && err == nil {
		return exitOK
	}
	if m != nil {
		fmt.Fprintf(stdout, "run %s committed in %s: %d inserted, %d updated, %d unchanged, %d moved, %d deleted, %d pending; %d objects uploaded (%d bytes), %d unchanged objects skipped; %d bytes read (%d objects, %d ranges); %d API requests, %d retries, %d answered 429, %s%s\n",
			m.RunID, took.Round(time.Millisecond), m.Counts.Inserted, m.Counts.Updated, m.Counts.Unchanged,
			m.Counts.Moved, m.Counts.Deleted, m.Counts.Pending, m.Uploads.Objects, m.Uploads.Bytes, m.Uploads.Skipped,
			m.Reads.Bytes, m.Reads.Objects, m.Reads.Ranges,
			m.API.Requests, m.API.Retries, m.API.RateLimited, rateSummary(m.API), refusedSummary(m))
		// A refused user is routine at scale: one line each, naming the user by position
		// and id, never by token.
		for _, u := range m.Users {
			if u.Status == "revoked" || u.Status == "forbidden" {
				line := u.Status + ": " + u.Error
				if u.Note != "" {
					line += " (" + u.Note + ")"
				}
				fmt.Fprintln(stderr, line)
			}
		}
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pipeline.ErrPartial) && m != nil:
		for _, f := range m.Failures {
			fmt.Fprintln(stderr, "failed:", f)
		}
		return exitPartial
	case isConfig(err):
		fmt.Fprintln(stderr, "extract:", err)
		return exitUsage
	}
	if errors.Is(err, pipeline.ErrCommitUnknown) {
		fmt.Fprintln(stderr, "extract: run failed; whether it committed is unknown (the next run settles it):", err)
		return exitFailed
	}
	fmt.Fprintln(stderr, "extract: run failed, nothing committed:", err)
	if errors.Is(err, pipeline.ErrAppTokenRefused) {
		fmt.Fprintln(stderr, "extract: check AKAHU_APP_TOKEN (rotated or wrong?); no user's data was purged")
	}
	return exitFailed
}

// refusedSummary is the summary's tail for refused users: "; users: 2 revoked, 1
// purged, 1 forbidden", or "" when Akahu refused none.
func refusedSummary(m *pipeline.Manifest) string {
	n := map[string]int{}
	for _, u := range m.Users {
		n[u.Status]++
	}
	var parts []string
	if n["revoked"] > 0 {
		parts = append(parts, fmt.Sprintf("%d revoked", n["revoked"]))
	}
	if len(m.Purges) > 0 {
		parts = append(parts, fmt.Sprintf("%d purged", len(m.Purges)))
	}
	if n["forbidden"] > 0 {
		parts = append(parts, fmt.Sprintf("%d forbidden", n["forbidden"]))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; users: " + strings.Join(parts, ", ")
}

// rateSummary reports the achieved request rate against the budget, and the
// client's slow-downs for 429s.
func rateSummary(a pipeline.APIStats) string {
	s := fmt.Sprintf("%.1f requests/s", a.AchievedRPS)
	if a.RPSBudget > 0 {
		s += fmt.Sprintf(" of a %.4g/s budget", a.RPSBudget)
	}
	if a.RateLimitSlowdowns > 0 {
		s += fmt.Sprintf(" (%d slow-downs for 429s, last pace %.1f/s)", a.RateLimitSlowdowns, a.RateLimitRPS)
	}
	return s
}

func isConfig(err error) bool { return errors.Is(err, pipeline.ErrConfig) }

// config turns flags and environment into a pipeline configuration and a client.
func (f *runFlags) config(ctx context.Context, getenv env, log *slog.Logger) (pipeline.Config, *akahu.Client, error) {
	var cfg pipeline.Config
	if f.out == "" {
		return cfg, nil, errors.New("--out is required (a directory or gs://BUCKET/PREFIX)")
	}
	lookback, err := parseDays("lookback", f.lookback)
	if err != nil {
		return cfg, nil, err
	}
	history, err := parseDays("history", f.history)
	if err != nil {
		return cfg, nil, err
	}
	for _, d := range []struct{ name, v string }{{"start", f.start}, {"end", f.end}} {
		if d.v != "" {
			if _, err := time.Parse(time.DateOnly, d.v); err != nil {
				return cfg, nil, fmt.Errorf("--%s %q: want a date YYYY-MM-DD", d.name, d.v)
			}
		}
	}
	if f.start != "" && f.end != "" && f.end < f.start {
		return cfg, nil, fmt.Errorf("--end %s is before --start %s", f.end, f.start)
	}
	if _, err := time.LoadLocation(f.timeZone); err != nil {
		return cfg, nil, fmt.Errorf("--time-zone %q: unknown zone", f.timeZone)
	}
	if f.workers < 1 || f.workers > 256 {
		return cfg, nil, fmt.Errorf("--workers %d: want 1..256", f.workers)
	}
	if f.maxInFlight < 1 || f.maxInFlight > 256 {
		return cfg, nil, fmt.Errorf("--max-in-flight %d: want 1..256", f.maxInFlight)
	}
	if f.rps < 0 {
		return cfg, nil, fmt.Errorf("--rps %v: want 0 (unlimited) or more", f.rps)
	}
	if f.refreshWait <= 0 {
		return cfg, nil, fmt.Errorf("--refresh-wait %s: want a positive duration such as 3m", f.refreshWait)
	}
	if f.buckets < 1 || f.buckets > 4096 {
		return cfg, nil, fmt.Errorf("--buckets %d: want 1..4096", f.buckets)
	}
	if getenv("JOB_COMPLETION_INDEX") != "" && getenv("CLOUD_RUN_TASK_COUNT") == "" && !f.shardsSet {
		// A Kubernetes Indexed Job exports its index but not its completion count.
		return cfg, nil, fmt.Errorf("JOB_COMPLETION_INDEX=%s is set (a Kubernetes Indexed Job) but not the shard count: pass --shards N, N being the Job's completions", getenv("JOB_COMPLETION_INDEX"))
	}
	if f.shards < 1 || f.shard < 0 || f.shard >= f.shards {
		return cfg, nil, fmt.Errorf("--shard %d --shards %d: want 0 <= shard < shards", f.shard, f.shards)
	}
	tasks := f.tasks
	if tasks == 0 {
		tasks = f.shards
	}
	if tasks < 1 || tasks > f.shards {
		return cfg, nil, fmt.Errorf("--tasks %d --shards %d: want 1 <= tasks <= shards (task i runs shards i, i+tasks, … one after another)", tasks, f.shards)
	}
	f.runShards = []int{f.shard}
	if !f.shardSet {
		if f.shard >= tasks {
			return cfg, nil, fmt.Errorf("task index %d (CLOUD_RUN_TASK_INDEX or JOB_COMPLETION_INDEX) with --tasks %d: want 0 <= index < tasks", f.shard, tasks)
		}
		f.runShards = pipeline.TaskShards(f.shard, tasks, f.shards)
	}
	var accounts []string
	for _, a := range strings.Split(f.accounts, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if !strings.HasPrefix(a, "acc_") {
				return cfg, nil, fmt.Errorf("--accounts: %q is not an account id (acc_…)", a)
			}
			accounts = append(accounts, a)
		}
	}
	tokens, err := userTokens(getenv, f.tokensFile)
	if err != nil {
		return cfg, nil, err
	}
	appToken := getenv("AKAHU_APP_TOKEN")
	if appToken == "" {
		return cfg, nil, errors.New("AKAHU_APP_TOKEN is not set")
	}
	client, err := akahu.New(akahu.Config{
		BaseURL: getenv("AKAHU_BASE_URL"), AppToken: akahu.Token(appToken),
		RequestsPerSecond: taskBudget(f.rps, tasks), MaxInFlight: f.maxInFlight, Logger: log,
	})
	if err != nil {
		return cfg, nil, err
	}
	out, err := openBucket(ctx, f.out)
	if err != nil {
		return cfg, nil, err
	}
	cfg = pipeline.Config{
		Out: out, Tokens: tokens, Start: f.start, End: f.end, Lookback: lookback, History: history,
		Accounts: accounts, Workers: f.workers, DryRun: f.dryRun, TimeZone: f.timeZone,
		Buckets: f.buckets, Shard: f.shard, Shards: f.shards, LockWait: f.lockWait,
		Logger: log, ToolVersion: version(), BeforeWrite: killHook(getenv), PurgeRevoked: f.purgeRevoked,
		FailOnRevoked: f.failOnRevoked, Refresh: f.refresh, RefreshWait: f.refreshWait,
		SpillDir: f.spillDir, AccountWalks: f.accountWalks, CompareValues: f.compareValues,
	}
	return cfg, client, nil
}

// taskBudget is one task's share of the job's request rate budget (0: none): the
// tasks run at once, each one shard at a time.
func taskBudget(rps float64, tasks int) float64 {
	return rps / float64(max(tasks, 1))
}

// userTokens returns the user tokens: AKAHU_USER_TOKEN, or a file with one per line
// (blank lines and # comments ignored), each optionally followed by the token's
// Akahu user id (`TOKEN user_…`, separated by spaces or a tab; see
// pipeline.TokensFile). The file is checked whole here, once, and read again by
// each run, which keeps only the tokens of its own users: a process that runs many
// shards holds no fleet-sized list. Errors name the line, never the token or the id.
func userTokens(getenv env, file string) (pipeline.Tokens, error) {
	if file == "" {
		t := strings.TrimSpace(getenv("AKAHU_USER_TOKEN"))
		if t == "" {
			return nil, errors.New("no user token: set AKAHU_USER_TOKEN or pass --user-tokens-file")
		}
		return pipeline.TokenList([]akahu.Token{akahu.Token(t)}, nil), nil
	}
	if _, err := pipeline.CheckTokensFile(file); err != nil {
		return nil, fmt.Errorf("--user-tokens-file: %w", err)
	}
	return pipeline.TokensFile(file), nil
}

// openBucket opens a local directory or a gs://BUCKET/PREFIX location.
func openBucket(ctx context.Context, out string) (bucket.Bucket, error) {
	if rest, ok := strings.CutPrefix(out, "gs://"); ok {
		name, prefix, _ := strings.Cut(rest, "/")
		if name == "" {
			return nil, fmt.Errorf("--out %q: want gs://BUCKET/PREFIX", out)
		}
		b, err := gcs.New(ctx, name, strings.Trim(prefix, "/"))
		if err != nil {
			return nil, fmt.Errorf("--out %s: %w", out, err)
		}
		return b, nil
	}
	if strings.Contains(out, "://") {
		return nil, fmt.Errorf("--out %q: only local directories and gs:// are supported", out)
	}
	b, err := bucket.NewLocal(out)
	if err != nil {
		return nil, fmt.Errorf("--out %s: %w", out, err)
	}
	return b, nil
}
