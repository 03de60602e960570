package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// cmdDemo runs the pipeline against the embedded fake Akahu: a two-year backfill of a
// realistic population, then a day of changes (new, changed, moved, deleted and settled
// transactions) and an incremental run that picks them up.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) int {
	fs := flag.NewFlagSet("extract demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "demo-out", "output directory")
	users := fs.Int("users", 3, "users in the fake population")
	accounts := fs.Int("accounts-per-user", 4, "accounts per user")
	perMonth := fs.Int("tx-per-month", 60, "transactions per account per month")
	logFmt := fs.String("log-format", "text", "auto, text, json or gcp")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	format, err := logFormat(*logFmt, getenv, isTerminal(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitUsage
	}
	stderr, display := progressOut(stderr, isTerminal(stderr), format)
	log, err := newLogger(stderr, format, *logLevel, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitUsage
	}
	srv := akahutest.NewServer(akahutest.Options{Users: *users, AccountsPerUser: *accounts, TxPerAccountPerMonth: *perMonth})
	defer srv.Close()
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: srv.Client(), Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitFailed
	}
	dir, _ := filepath.Abs(*out)
	b, err := bucket.NewLocal(dir)
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitFailed
	}
	var tokens []akahu.Token
	for _, u := range srv.Users() {
		tokens = append(tokens, akahu.Token(u.Token))
	}
	opts := srv.Options()
	to := opts.To
	// The fake's clock: the morning after its last posting, advancing in real time so
	// run ids (which start with the time) keep their order.
	base, began := time.Date(to.Year(), to.Month(), to.Day()+1, 9, 0, 0, 0, to.Location()), time.Now()
	now := func() time.Time { return base.Add(time.Since(began)) }
	cfg := pipeline.Config{Out: b, Source: client, Users: tokens, Logger: log, ToolVersion: version(), Now: now,
		Start: opts.From.Format(time.DateOnly), End: to.Format(time.DateOnly)}
	cfg.Progress = display.report(client.Stats)

	fmt.Fprintf(stdout, "demo: fake Akahu at %s with %d users, %d settled transactions from %s to %s\n",
		srv.URL, len(tokens), srv.TotalSettledAll(), cfg.Start, cfg.End)
	fmt.Fprintf(stdout, "\n1) backfill into %s\n", dir)
	if code := execute(ctx, cfg, stdout, stderr); code != exitOK {
		return code
	}

	changes := scriptChanges(srv, to)
	fmt.Fprintf(stdout, "\n2) Akahu changes overnight: %s\n", changes)
	fmt.Fprintln(stdout, "\n3) incremental run (from the last manifest minus the 30-day lookback)")
	cfg.Start, cfg.End = "", ""
	cfg.Progress = display.report(client.Stats)
	if code := execute(ctx, cfg, stdout, stderr); code != exitOK {
		return code
	}
	printLayout(ctx, stdout, b, dir)
	return exitOK
}

// scriptChanges mutates the fake like a bank would overnight and describes it.
func scriptChanges(srv *akahutest.Server, to time.Time) string {
	u := srv.Users()[0]
	var acct string
	var recent []akahutest.Txn
	for _, id := range srv.AccountIDs(u.ID) {
		txs := srv.Settled(id, to.AddDate(0, 0, -20), to.AddDate(0, 0, 1))
		if len(txs) >= 4 {
			acct, recent = id, txs
			break
		}
	}
	if acct == "" {
		return "none (no account with recent transactions)"
	}
	_ = srv.DeleteTransaction(recent[0].ID)
	_, _ = srv.ReplaceID(recent[1].ID)
	_ = srv.SetDescription(recent[2].ID, "POS W/D Kāpiti Coast Café ☕ (corrected)")
	first := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, to.Location())
	_ = srv.MoveDate(recent[3].ID, first.AddDate(0, 0, -1))
	srv.AddTransaction(acct, to, "-42.5", "New World Thorndon")
	settled := ""
	if _, err := srv.SettlePending(acct); err == nil {
		settled = ", 1 pending settled"
	}
	return fmt.Sprintf("account %s: 1 deleted, 1 id replaced, 1 description changed, 1 date moved into the previous month, 1 new%s", acct, settled)
}

// printLayout lists the dataset and shows how to query it.
func printLayout(ctx context.Context, w io.Writer, b bucket.Bucket, dir string) {
	list, err := b.List(ctx, "")
	if err != nil {
		return
	}
	counts := map[string]int{}
	var bytes int64
	for _, a := range list {
		top := a.Name
		if i := indexByte(top, '/'); i >= 0 {
			top = top[:i+1]
		}
		counts[top]++
		bytes += a.Size
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "\ndataset %s: %d objects, %d bytes\n", dir, len(list), bytes)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-16s %d object(s)\n", k, counts[k])
	}
	fmt.Fprintf(w, `
query it with DuckDB:
  duckdb -c "SELECT month, count(*) AS txns, sum(amount) AS net
             FROM read_parquet('%s/transactions/**/*.parquet', hive_partitioning = true)
             GROUP BY month ORDER BY month DESC LIMIT 6"
`, dir)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
