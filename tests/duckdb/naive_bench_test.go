package duckdb_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// naiveConcurrency is the requests in flight of both the script and the pipeline:
// the script's workers, the pipeline's Workers (the client's MaxInFlight is 8 too).
const naiveConcurrency = 8

// naivePopulation is the fleet benchmark's sparse population (pipeline's
// BenchmarkFleet, mix=sparse): users × 3 accounts, two with TRANSACTIONS, ~1
// settled transaction a month over two years.
func naivePopulation(users int, latency time.Duration) akahutest.Options {
	return akahutest.Options{Seed: 23, Users: users, AccountsPerUser: 3, TxPerAccountPerMonth: 1,
		PageSize: 100, PageLatency: latency}
}

// BenchmarkNaiveScript is the baseline a fleet user would write instead of the
// pipeline: with 8 workers over the users, list each user's accounts, fetch each
// account's whole two-year range through the Akahu client into JSON lines, then
// have DuckDB write month-partitioned Parquet (COPY ... TO ... (FORMAT parquet,
// PARTITION_BY (_month))). It has no incremental state, no deletions, no pending
// transactions, no manifest. The pipeline (one process, Workers 8) then backfills
// the same population into a local bucket, and runs again the next day (the default
// 30-day lookback) over the same, unchanged data: the script has no state, so
// keeping its dataset as current costs a full run every day.
//
// Cases: no latency with 2,000 users (CPU: the fake, HTTP, parsing and encoding)
// and 20 ms a request with 300 users (latency). NAIVE_USERS overrides the user
// count of every case (development runs). Reported: script_wall_s,
// script_requests, pipeline_wall_s, pipeline_requests and pipeline/script, the
// ratio of wall times (below 1: the pipeline is faster); daily_wall_s,
// daily_requests and daily/script for the next day's run.
func BenchmarkNaiveScript(b *testing.B) {
	for _, c := range []struct {
		users   int
		latency time.Duration
	}{{2000, 0}, {300, 20 * time.Millisecond}} {
		if s := os.Getenv("NAIVE_USERS"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				b.Fatalf("NAIVE_USERS %q: want a user count", s)
			}
			c.users = n
		}
		b.Run(fmt.Sprintf("latency=%s/users=%d", c.latency, c.users), func(b *testing.B) {
			srv := akahutest.NewServer(naivePopulation(c.users, c.latency))
			defer srv.Close()
			total := srv.TotalSettledAll()
			var scriptWall, pipeWall, dailyWall time.Duration
			var scriptReq, pipeReq, dailyReq int64
			for i := 0; i < b.N; i++ {
				srv.ResetStats()
				rows, w := naiveScript(b, srv)
				scriptWall += w
				scriptReq += srv.Stats().Requests
				if rows != int64(total) {
					b.Fatalf("script wrote %d rows, the fake serves %d", rows, total)
				}
				srv.ResetStats()
				out := newNaiveBucket(b)
				m, w := naivePipeline(b, srv, out, 0)
				pipeWall += w
				pipeReq += srv.Stats().Requests
				if m.Counts.Inserted != int64(total) {
					b.Fatalf("pipeline inserted %d, the fake serves %d", m.Counts.Inserted, total)
				}
				// The next day's run keeps the same two years current; the script,
				// which has no state, would run in full again.
				srv.ResetStats()
				m, w = naivePipeline(b, srv, out, 24*time.Hour)
				dailyWall += w
				dailyReq += srv.Stats().Requests
				if m.Counts.Inserted != 0 || m.Counts.Deleted != 0 {
					b.Fatalf("daily run over unchanged data: %+v", m.Counts)
				}
			}
			n := float64(b.N)
			b.ReportMetric(scriptWall.Seconds()/n, "script_wall_s")
			b.ReportMetric(float64(scriptReq)/n, "script_requests")
			b.ReportMetric(pipeWall.Seconds()/n, "pipeline_wall_s")
			b.ReportMetric(float64(pipeReq)/n, "pipeline_requests")
			b.ReportMetric(pipeWall.Seconds()/scriptWall.Seconds(), "pipeline/script")
			b.ReportMetric(dailyWall.Seconds()/n, "daily_wall_s")
			b.ReportMetric(float64(dailyReq)/n, "daily_requests")
			b.ReportMetric(dailyWall.Seconds()/scriptWall.Seconds(), "daily/script")
			b.Logf("| users | latency | script (every day) | pipeline backfill | backfill/script | pipeline daily | daily/script |\n|---|---|---|---|---|---|---|\n"+
				"| %d | %s | %.1f s, %.0f requests | %.1f s, %.0f requests | %.2f | %.1f s, %.0f requests | %.2f |", c.users, c.latency,
				scriptWall.Seconds()/n, float64(scriptReq)/n, pipeWall.Seconds()/n, float64(pipeReq)/n,
				pipeWall.Seconds()/scriptWall.Seconds(), dailyWall.Seconds()/n, float64(dailyReq)/n,
				dailyWall.Seconds()/scriptWall.Seconds())
		})
	}
}

// naiveScript runs the baseline once into a temporary directory and returns the
// rows DuckDB wrote and the wall time (fetch and COPY).
func naiveScript(b *testing.B, srv *akahutest.Server) (int64, time.Duration) {
	b.Helper()
	ctx := context.Background()
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken())})
	if err != nil {
		b.Fatal(err)
	}
	loc, err := time.LoadLocation(datasetTimeZone)
	if err != nil {
		b.Fatal(err)
	}
	o := srv.Options()
	window := akahu.LocalDates(o.From, o.To, loc)
	dir := b.TempDir()
	out := filepath.Join(dir, "out")
	users := make(chan akahu.Token)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	t0 := time.Now()
	for w := range naiveConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.jsonl", w)))
			if err != nil {
				fail(err)
				for range users {
				}
				return
			}
			bw := bufio.NewWriterSize(f, 1<<16)
			for tok := range users {
				if err := naiveUser(ctx, client, tok, window, loc, bw); err != nil {
					fail(err)
				}
			}
			if err := bw.Flush(); err != nil {
				fail(err)
			}
			if err := f.Close(); err != nil {
				fail(err)
			}
		}()
	}
	for _, u := range srv.Users() {
		users <- akahu.Token(u.Token)
	}
	close(users)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("naive script: %v", firstErr)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	copySQL := fmt.Sprintf(`COPY (SELECT * FROM read_json(%s, format = 'newline_delimited', sample_size = -1))
		TO %s (FORMAT parquet, PARTITION_BY (_month))`, quote(filepath.Join(dir, "*.jsonl")), quote(out))
	if _, err := db.ExecContext(ctx, copySQL); err != nil {
		b.Fatalf("naive script: DuckDB COPY: %v", err)
	}
	wall := time.Since(t0)
	var rows int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM read_parquet("+quote(filepath.Join(out, "**", "*.parquet"))+")").Scan(&rows); err != nil {
		b.Fatalf("naive script: counting rows: %v", err)
	}
	return rows, wall
}

// naiveUser lists one user's accounts and writes every transaction of each account
// over window as a JSON line, with a _month field (the local month of its date)
// added for the partitioning.
func naiveUser(ctx context.Context, client *akahu.Client, tok akahu.Token, window akahu.Window, loc *time.Location, w *bufio.Writer) error {
	accounts, err := client.Accounts(ctx, tok)
	if err != nil {
		return fmt.Errorf("listing accounts: %w", err)
	}
	for _, a := range accounts {
		if !a.HasTransactions() {
			continue
		}
		err := client.Transactions(ctx, tok, a.ID, window, func(p akahu.Page) error {
			for _, item := range p.Items {
				var t struct{ Date time.Time }
				if err := json.Unmarshal(item, &t); err != nil {
					return fmt.Errorf("transaction of account %s: %w", a.ID, err)
				}
				w.WriteString(`{"_month":"` + t.Date.In(loc).Format("2006-01") + `",`)
				w.Write(item[1:])
				w.WriteByte('\n')
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("transactions of account %s: %w", a.ID, err)
		}
	}
	return nil
}

// newNaiveBucket is a local bucket in a temporary directory.
func newNaiveBucket(b *testing.B) bucket.Bucket {
	b.Helper()
	lb, err := bucket.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return lb
}

// naivePipeline runs pipeline.Run in this process into out: with later 0, the
// backfill of the fake's whole range, the morning after its last day; with later
// > 0, the scheduled run that much later (no dates: it continues from the state,
// minus the default lookback).
func naivePipeline(b *testing.B, srv *akahutest.Server, out bucket.Bucket, later time.Duration) (*pipeline.Manifest, time.Duration) {
	b.Helper()
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken())})
	if err != nil {
		b.Fatal(err)
	}
	var tokens []akahu.Token
	for _, u := range srv.Users() {
		tokens = append(tokens, akahu.Token(u.Token))
	}
	o := srv.Options()
	base, began := time.Date(o.To.Year(), o.To.Month(), o.To.Day()+1, 9, 0, 0, 0, o.To.Location()).Add(later), time.Now()
	cfg := pipeline.Config{Out: out, Source: client, Users: tokens,
		Workers: naiveConcurrency, Now: func() time.Time { return base.Add(time.Since(began)) }}
	if later == 0 {
		cfg.Start, cfg.End = o.From.Format(time.DateOnly), o.To.Format(time.DateOnly)
	}
	t0 := time.Now()
	m, err := pipeline.Run(context.Background(), cfg)
	wall := time.Since(t0)
	if err != nil {
		b.Fatalf("pipeline: %v", err)
	}
	return m, wall
}
