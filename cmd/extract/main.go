package main

import (
	"context"
	"fmt"
	"github.com/akahu-etl/akahu-parquet/pipeline"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitPartial = 1
	exitUsage   = 2
	exitFailed  = 3
)

func main() {
	// A soft memory limit, unless GOMEMLIMIT sets one: the garbage collector works
	// harder near it instead of letting the heap double (a 512 MiB Cloud Run task
	// has room for it and the spill's budget).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(pipeline.DefaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(realMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// env abstracts os.Getenv for tests.
type env func(string) string

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr, getenv)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr, getenv)
	case "verify":
		return cmdVerify(ctx, args[1:], stdout, stderr, getenv)
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr, getenv)
	case "purge":
		return cmdPurge(ctx, args[1:], stdout, stderr, getenv)
	case "reshard":
		return cmdReshard(ctx, args[1:], stdout, stderr, getenv)
	case "sql":
		return cmdSQL(args[1:], stdout, stderr)
	case "fake-akahu":
		return cmdFakeAkahu(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "extract", version())
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "extract: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  extract run    --out DIR|gs://BUCKET/PREFIX [--start YYYY-MM-DD] [--end YYYY-MM-DD]
                 [--accounts acc_1,acc_2] [--workers N] [--lookback 30d] [--dry-run]
  extract demo   [--out DIR]        built-in fake Akahu, no tokens needed
  extract verify --out DIR|gs://BUCKET/PREFIX
  extract status --out DIR|gs://BUCKET/PREFIX [--json] [--max-age 36h]
                                                  the dataset at a glance; exit 1 when a shard is stale
  extract purge  --out DIR|gs://BUCKET/PREFIX (--user ID | --account ID)
  extract reshard --out DIR|gs://BUCKET/PREFIX --shards N   change the shard count
  extract sql duckdb   --out DIR|gs://BUCKET/PREFIX          print DuckDB views over the dataset
  extract sql bigquery --out gs://BUCKET/PREFIX --dataset PROJECT.DATASET
                                                  print BigQuery external tables over it
  extract fake-akahu [--addr 127.0.0.1:PORT] [--users N] [--seed S] [--faults 429=0.05,503=0.02]
                 serve the fake Akahu to develop against; prints its URL and test tokens

Run 'extract COMMAND -h' for a command's flags. Credentials come from the environment:
AKAHU_APP_TOKEN, and AKAHU_USER_TOKEN or --user-tokens-file.
`)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

// isTerminal reports whether w is a terminal: a character device, or a writer that
// says it is one (tests).
func isTerminal(w io.Writer) bool {
	if t, ok := w.(interface{ IsTerminal() bool }); ok {
		return t.IsTerminal()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
