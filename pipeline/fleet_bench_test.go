package pipeline_test

// BenchmarkFleet: how every cost of a run grows with the number of users. A fake
// Akahu with a fleet population (2,000 or 20,000 users, quiet or mixed accounts) is
// served by this process; each shard of a `--shards 4 --buckets 16` fleet runs in a
// child process (TestFleetChild, like BenchmarkPeakRSS's child), one after another,
// so that peak RSS is per process and excludes the fake. Each population gets a
// two-year backfill, then a small upstream change (new, changed and deleted
// transactions), then a daily run. docs/scaling.md explains the figures; run one
// size alone with
//
//	FLEET_USERS=2000 FLEET_MIX=sparse go test -run '^$' -bench BenchmarkFleet -benchtime 1x ./pipeline/

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// The fleet's shape: every benchmark population is run as a fleet would run it.
// A fleet runs as fleetTasks processes (run one after another here, so that each
// one's peak RSS is its own), with a shard per fleetUsersPerShard users (at least
// one per task) and fleetBucketsPerShard buckets a shard: each task runs its shards
// in turn, so a process holds one shard's users whatever the fleet's size.
const (
	fleetTasks           = 4
	fleetShards          = fleetTasks // the shard count of the benchmarks that fix it
	fleetUsersPerShard   = 500
	fleetBucketsPerShard = 4
	// fleetPerUserCalls is what the minimum allows each user once per fleet run,
	// whatever the shard count: GET /me, GET /accounts and one pending list
	// (GET /transactions/pending).
	fleetPerUserCalls = 3
)

// fleetPopulation is a fleet of users with 3 accounts each (two of them with the
// TRANSACTIONS attribute: the fake's Everyday and Saver; the third is a KiwiSaver),
// ~1 settled transaction a month over two years (~24 per account); in the dense mix
// every 10th account has ~150 a month instead.
func fleetPopulation(users int, mix string, latency time.Duration) akahutest.Options {
	o := akahutest.Options{Seed: 23, Users: users, AccountsPerUser: 3, TxPerAccountPerMonth: 1,
		PageSize: 100, PageLatency: latency}
	if mix == "dense" {
		o.DenseEvery, o.DenseTxPerAccountPerMonth = 10, 150
	}
	return o
}

// fleetCPULatency is the page latency of the CPU-bound case ("cpu" in FLEET_LATENCY)
// at a population size: 5 ms at up to 2,000 users, 2 ms above. There 8 requests in
// flight ask for 1,600 and 4,000 requests a second, more than this 2-core machine,
// which also serves the fake, can answer and process: the run measures CPU, not
// latency hiding.
func fleetCPULatency(users int) time.Duration {
	if users <= 2000 {
		return 5 * time.Millisecond
	}
	return 2 * time.Millisecond
}

// fleetLatency is BenchmarkShardMemory's latency: FLEET_LATENCY when it names one,
// else the CPU-bound one.
func fleetLatency(tb testing.TB, users int) time.Duration {
	if ls := fleetLatencies(tb, users); os.Getenv("FLEET_LATENCY") != "" && len(ls) == 1 {
		return ls[0]
	}
	return fleetCPULatency(users)
}

// fleetLatencyBound is the latency of the latency-bound case: 50 ms a request, an
// API across the internet. There the wall time is set by how well the run keeps its
// 8 requests in flight (what wall/limit judges), not by this machine's CPU.
const fleetLatencyBound = 50 * time.Millisecond

// fleetLatencies are the latencies BenchmarkFleet runs a population at: FLEET_LATENCY,
// comma-separated Go durations or "cpu" (fleetCPULatency's), default "50ms,cpu": the
// latency-bound case, then the CPU-bound one.
func fleetLatencies(tb testing.TB, users int) []time.Duration {
	spec := os.Getenv("FLEET_LATENCY")
	if spec == "" {
		spec = fleetLatencyBound.String() + ",cpu"
	}
	var out []time.Duration
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "cpu" {
			out = append(out, fleetCPULatency(users))
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil || d < 0 {
			tb.Fatalf("FLEET_LATENCY %q: want comma-separated Go durations or cpu", spec)
		}
		out = append(out, d)
	}
	return out
}

// BenchmarkFleet runs the fleet benchmark for each population in FLEET_USERS
// (comma-separated, default 2000,20000), mix in FLEET_MIX (default sparse,dense) and
// latency in FLEET_LATENCY (default 50ms,cpu; see fleetLatencies).
// Reported, for the backfill (bf_) and the daily run (daily_) separately, each
// summed or maxed over the four shard runs:
//
//   - requests: every request the fake received; min_requests: the minimum, per
//     account with TRANSACTIONS ⌈n/100⌉ pages (at least 1) over the run's range plus
//     3 per-user calls counted once per user for the fleet; req/min, their ratio;
//   - wall_s: the shard runs' wall times added up (they run one after another);
//     cpu_s: the shard processes' CPU time during their runs, added up (the
//     pipeline and client only: the fake runs in this process);
//     limit_s: min_requests × latency / requests in flight (8); wall/limit;
//   - rss_MiB: the highest peak RSS of the shard processes; run_rss_p50_MiB: the
//     median of the shard runs' own peaks (a task's process resets its peak between
//     its runs; with -v each task's runs are logged with their Go memory, heap,
//     live heap and the live heap a run leaves to the next);
//   - read_MB, written_MB: bytes of objects read from and written to the bucket;
//     ranged_MB: the part of read_MB read by range (footers and column chunks),
//     whole_tx_MB: transactions partitions read whole;
//     state_kB: bytes written under _manifests/, _inflight/ and _state/;
//   - gets, puts, lists: bucket operations (attrs and deletes are in the summary);
//   - spill_MB, held_parked: bytes the runs wrote to their local spill files and
//     held partitions they parked there (the manifests' spill figures).
//
// FLEET_IDS=1 gives each token's user id in the tokens file (Config.UserIDs), as a
// fleet that knows its users' ids runs: a new token costs no GET /me.
//
// FLEET_USERS_PER_BUCKET=N sizes the bucket count by the fleet (one bucket per N
// users) instead of 16.
//
// FLEET_BACKFILL_CACHE=DIR keeps each population's bucket after its backfill in DIR
// and, when it is there, starts from it instead of running the backfill: for
// experiments on the daily run (the backfill is then not reported).
//
// It also logs one table row per population for docs/scaling.md.
func BenchmarkFleet(b *testing.B) {
	for _, users := range fleetSizes(b) {
		for _, mix := range fleetMixes(b) {
			for _, latency := range fleetLatencies(b, users) {
				b.Run(fmt.Sprintf("users=%d/mix=%s/latency=%s", users, mix, latency), func(b *testing.B) {
					var sum fleetResult
					for i := 0; i < b.N; i++ {
						r := runFleet(b, fleetPopulation(users, mix, latency))
						sum.add(r)
					}
					for _, run := range []struct {
						name string
						s    *fleetRunResult
					}{{"bf", &sum.Backfill}, {"daily", &sum.Daily}} {
						s := run.s
						if s.Requests == 0 {
							continue // a cached backfill (FLEET_BACKFILL_CACHE): not run
						}
						n := float64(s.Passes) // iterations × daily passes: the figures are means
						b.ReportMetric(float64(s.Requests)/n, run.name+"_requests")
						b.ReportMetric(float64(s.Minimum)/n, run.name+"_min_requests")
						b.ReportMetric(s.ratio(), run.name+"_req/min")
						b.ReportMetric(s.Wall.Seconds()/n, run.name+"_wall_s")
						b.ReportMetric(s.CPU.Seconds()/n, run.name+"_cpu_s")
						b.ReportMetric(s.limit(latency).Seconds()/n, run.name+"_limit_s")
						if latency > 0 {
							b.ReportMetric(s.Wall.Seconds()/s.limit(latency).Seconds(), run.name+"_wall/limit")
						}
						b.ReportMetric(s.passPeak(), run.name+"_rss_MiB")
						b.ReportMetric(float64(s.PeakRSSKiB)/1024, run.name+"_rss_max_MiB")
						b.ReportMetric(s.medianRunPeak(), run.name+"_run_rss_p50_MiB")
						if len(s.RunAnon) > 0 {
							b.ReportMetric(float64(slices.Max(s.RunAnon)), run.name+"_anon_MiB")
						}
						b.ReportMetric(float64(s.IO.BytesRead)/1e6/n, run.name+"_read_MB")
						b.ReportMetric(float64(s.IO.RangedBytes)/1e6/n, run.name+"_ranged_MB")
						b.ReportMetric(float64(s.IO.WholeTx)/1e6/n, run.name+"_whole_tx_MB")
						b.ReportMetric(float64(s.IO.BytesWritten)/1e6/n, run.name+"_written_MB")
						b.ReportMetric(float64(s.IO.StateBytes)/1e3/n, run.name+"_state_kB")
						b.ReportMetric(float64(s.IO.Gets)/n, run.name+"_gets")
						b.ReportMetric(float64(s.IO.Puts)/n, run.name+"_puts")
						b.ReportMetric(float64(s.IO.Lists)/n, run.name+"_lists")
						b.ReportMetric(float64(s.Spill.Bytes)/1e6/n, run.name+"_spill_MB")
						b.ReportMetric(float64(s.Spill.HeldParked)/n, run.name+"_held_parked")
					}
					b.Logf("fleet summary (latency %s, %d iteration(s)):\n%s\n%s", latency, b.N, fleetTableHeader,
						sum.rows(users, mix, latency))
				})
			}
		}
	}
}

func fleetSizes(b *testing.B) []int {
	spec := os.Getenv("FLEET_USERS")
	if spec == "" {
		spec = "2000,20000"
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("FLEET_USERS %q: want comma-separated user counts", spec)
		}
		out = append(out, n)
	}
	return out
}

func fleetMixes(b *testing.B) []string {
	spec := os.Getenv("FLEET_MIX")
	if spec == "" {
		spec = "sparse,dense"
	}
	var out []string
	for _, m := range strings.Split(spec, ",") {
		m = strings.TrimSpace(m)
		if m != "sparse" && m != "dense" {
			b.Fatalf("FLEET_MIX %q: want sparse, dense or both", spec)
		}
		out = append(out, m)
	}
	return out
}

// TestFleetSmoke runs the fleet harness on 20 users with no latency and a short
// history, as 8 shards by 2 tasks: the harness works (children running their shards
// in turn, metered bucket, minimum) and its figures are coherent. It measures
// nothing.
func TestFleetSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 4 child processes")
	}
	// Three months of history instead of two years: the harness is what is tested.
	opts := fleetPopulation(20, "sparse", 0)
	opts.From = akahutest.DefaultTo.AddDate(0, -3, 0)
	r := runFleetSharded(t, opts, 8, 2, 2)
	for _, run := range []struct {
		name string
		s    fleetRunResult
	}{{"backfill", r.Backfill}, {"daily", r.Daily}} {
		s := run.s
		// Requests may fall below the per-account minimum (GET /transactions reads
		// all of a user's accounts in one walk), not to nothing.
		if s.Minimum <= 20*fleetPerUserCalls || s.Requests < 20*fleetPerUserCalls/3 {
			t.Errorf("%s: %d requests, minimum %d: want a minimum above the per-user calls and requests", run.name, s.Requests, s.Minimum)
		}
		if s.PeakRSSKiB <= 0 || s.Wall <= 0 {
			t.Errorf("%s: peak RSS %d KiB, wall %s", run.name, s.PeakRSSKiB, s.Wall)
		}
		// One peak per shard run and pass, none above the processes' peak; one
		// process peak per pass, the highest of them PeakRSSKiB.
		if len(s.RunPeaks) != 8*s.Passes || s.medianRunPeak() <= 0 || slices.Max(s.RunPeaks) > s.PeakRSSKiB>>10 {
			t.Errorf("%s: shard runs' peaks %v MiB: want 8 a pass (%d passes), each within the processes' peak %d MiB", run.name, s.RunPeaks, s.Passes, s.PeakRSSKiB>>10)
		}
		if len(s.PassPeaks) != s.Passes || slices.Max(s.PassPeaks) != s.PeakRSSKiB || s.passPeak() <= 0 {
			t.Errorf("%s: passes' peaks %v KiB, highest %d KiB, %d passes", run.name, s.PassPeaks, s.PeakRSSKiB, s.Passes)
		}
		if s.IO.BytesWritten <= 0 || s.IO.StateBytes <= 0 || s.IO.StateBytes >= s.IO.BytesWritten || s.IO.Puts <= 0 {
			t.Errorf("%s: bucket I/O %+v: want bytes and state bytes written", run.name, s.IO)
		}
	}
	if r.Backfill.Inserted != r.Backfill.Served {
		t.Errorf("backfill inserted %d transactions, the fake serves %d", r.Backfill.Inserted, r.Backfill.Served)
	}
	if r.Backfill.Passes != 1 || r.Daily.Passes != 2 {
		t.Fatalf("%d backfill passes, %d daily passes: want 1 and 2", r.Backfill.Passes, r.Daily.Passes)
	}
	if r.Daily.Served/2 >= r.Backfill.Served || r.Daily.Minimum/2 > r.Backfill.Minimum {
		t.Errorf("daily run: %d transactions in range, minimum %d (two passes); backfill: %d, minimum %d",
			r.Daily.Served, r.Daily.Minimum, r.Backfill.Served, r.Backfill.Minimum)
	}
	// Each pass starts from the backfill's bucket: each sees the same changes.
	if c := r.Daily.PassChanges; len(c) != 2 || c[0] == 0 || c[0] != c[1] {
		t.Errorf("the daily passes saw %v rows inserted, updated and deleted: want the same upstream changes in each", c)
	}
	if r.Daily.IO.BytesRead == 0 || r.Daily.IO.Gets == 0 {
		t.Errorf("daily run read nothing: %+v", r.Daily.IO)
	}
}

// fleetResult is one population's backfill and daily run.
type fleetResult struct {
	Backfill, Daily fleetRunResult
	Accounts        int // accounts with TRANSACTIONS
}

func (r *fleetResult) add(o fleetResult) {
	r.Backfill.add(o.Backfill)
	r.Daily.add(o.Daily)
	r.Accounts = o.Accounts
}

// fleetRunResult is one run of the fleet: its four shard runs together.
type fleetRunResult struct {
	Requests   int64 // every request the fake received
	Pages      int64 // of which settled transaction pages
	Minimum    int64
	Wall       time.Duration
	CPU        time.Duration // the shard processes' CPU time, added up
	PeakRSSKiB int64         // the highest of the processes' peaks (of every pass)
	Passes     int           // how many times the fleet ran (the figures here are their sums)
	PassPeaks  []int64       // each pass's highest process peak, KiB
	// PassChanges are each pass's rows inserted, updated and deleted.
	PassChanges []int64
	RunPeaks    []int64 // every shard run's own peak RSS, MiB (a task's runs reset the peak between them)
	RunAnon     []int64 // every shard run's peak anonymous resident memory, MiB (sampled every 20 ms)
	PeakLive    uint64  // the highest peak live heap of the shard processes
	IO          bucketIO
	Served      int64 // settled transactions the fake serves over the run's range
	Inserted    int64
	Updated     int64
	Deleted     int64
	Failures    int
	Spill       pipeline.SpillStats // the runs' manifests' spill figures, added up
}

// pass marks r as one pass of the fleet's run.
func (r fleetRunResult) pass() fleetRunResult {
	r.Passes, r.PassPeaks, r.PassChanges = 1, []int64{r.PeakRSSKiB}, []int64{r.Inserted + r.Updated + r.Deleted}
	return r
}

func (r *fleetRunResult) add(o fleetRunResult) {
	r.Passes += o.Passes
	r.PassPeaks = append(r.PassPeaks, o.PassPeaks...)
	r.PassChanges = append(r.PassChanges, o.PassChanges...)
	r.Spill.Bytes += o.Spill.Bytes
	r.Spill.HeldParked += o.Spill.HeldParked
	r.Requests += o.Requests
	r.Pages += o.Pages
	r.Minimum += o.Minimum
	r.Wall += o.Wall
	r.CPU += o.CPU
	r.PeakRSSKiB = max(r.PeakRSSKiB, o.PeakRSSKiB)
	r.RunPeaks = append(r.RunPeaks, o.RunPeaks...)
	r.RunAnon = append(r.RunAnon, o.RunAnon...)
	r.PeakLive = max(r.PeakLive, o.PeakLive)
	r.IO.add(o.IO)
	r.Served += o.Served
	r.Inserted += o.Inserted
	r.Updated += o.Updated
	r.Deleted += o.Deleted
	r.Failures += o.Failures
}

// passPeak is the median of the passes' process peaks, MiB: the peak a rerun
// reproduces (PeakRSSKiB is the highest of them).
func (r *fleetRunResult) passPeak() float64 {
	if len(r.PassPeaks) == 0 {
		return float64(r.PeakRSSKiB) / 1024
	}
	return median(r.PassPeaks) / 1024
}

// medianRunPeak is the median of the shard runs' own peak RSS, MiB: steadier than
// the process peak, the highest of a task's runs' peaks.
func (r *fleetRunResult) medianRunPeak() float64 { return median(r.RunPeaks) }

// median is the median of xs (0 for none).
func median(xs []int64) float64 {
	if len(xs) == 0 {
		return 0
	}
	p := slices.Clone(xs)
	slices.Sort(p)
	if n := len(p); n%2 == 0 {
		return float64(p[n/2-1]+p[n/2]) / 2
	}
	return float64(p[len(p)/2])
}

func (r *fleetRunResult) ratio() float64 { return float64(r.Requests) / float64(r.Minimum) }

// limit is the latency limit: the minimum requests, each taking latency, with
// min(Workers, the client's MaxInFlight) in flight all the time.
func (r *fleetRunResult) limit(latency time.Duration) time.Duration {
	inFlight := min(benchWorkers, akahu.DefaultMaxInFlight)
	return time.Duration(float64(r.Minimum) * float64(latency) / float64(inFlight))
}

const fleetTableHeader = "| users | mix | run | requests | minimum | req/min | wall s | limit s | wall/limit | peak RSS MiB | read MB (ranged, whole tx) | written MB | manifest+state kB | gets | puts | lists |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

// rows renders the means of the iterations (and daily passes) as two table rows;
// the peak RSS is the median of the passes' peaks (the highest in brackets when
// there are several).
func (r *fleetResult) rows(users int, mix string, latency time.Duration) string {
	var out []string
	for _, run := range []struct {
		name string
		s    fleetRunResult
	}{{"backfill", r.Backfill}, {"daily", r.Daily}} {
		if run.s.Requests == 0 {
			continue // a cached backfill (FLEET_BACKFILL_CACHE): not run
		}
		s, f := run.s, float64(run.s.Passes)
		peak := fmt.Sprintf("%.0f", s.passPeak())
		if s.Passes > 1 {
			peak += fmt.Sprintf(" (%.0f)", float64(s.PeakRSSKiB)/1024)
		}
		out = append(out, fmt.Sprintf("| %d | %s | %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f | %s | %.1f (%.1f, %.1f) | %.1f | %.0f | %.0f | %.0f | %.0f |",
			users, mix, run.name, float64(s.Requests)/f, float64(s.Minimum)/f, s.ratio(),
			s.Wall.Seconds()/f, s.limit(latency).Seconds()/f, s.Wall.Seconds()/s.limit(latency).Seconds(),
			peak, float64(s.IO.BytesRead)/1e6/f, float64(s.IO.RangedBytes)/1e6/f, float64(s.IO.WholeTx)/1e6/f, float64(s.IO.BytesWritten)/1e6/f,
			float64(s.IO.StateBytes)/1e3/f, float64(s.IO.Gets)/f, float64(s.IO.Puts)/f, float64(s.IO.Lists)/f))
	}
	return strings.Join(out, "\n")
}

// runFleet builds the population, backfills it with the fleet's tasks, changes it a
// little upstream, and runs the daily run with the fleet's tasks.
func runFleet(tb testing.TB, opts akahutest.Options) fleetResult {
	tb.Helper()
	return runFleetSharded(tb, opts, fleetShardsFor(tb, opts.Users), fleetTasks, fleetDailyPasses(tb))
}

// fleetDailyPasses is how many times the fleet's daily run is run, each time from the
// backfill's bucket (FLEET_DAILY_PASSES, default 3): a run's peak RSS moves by several
// MiB from pass to pass (where the collector's cycles fall), and a task's peak is the
// highest of its runs'; the median of the passes' peaks is what a rerun reproduces.
func fleetDailyPasses(tb testing.TB) int {
	s := os.Getenv("FLEET_DAILY_PASSES")
	if s == "" {
		return 3
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("FLEET_DAILY_PASSES %q: want a count of 1 or more", s)
	}
	return n
}

// fleetShardsFor is the shard count of a fleet of users: one shard per
// fleetUsersPerShard users (FLEET_USERS_PER_SHARD overrides; 0 fixes it at one
// shard per task), at least one per task.
func fleetShardsFor(tb testing.TB, users int) int {
	n := fleetUsersPerShard
	if s := os.Getenv("FLEET_USERS_PER_SHARD"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 0 {
			tb.Fatalf("FLEET_USERS_PER_SHARD %q: want a user count, or 0", s)
		}
	}
	if n == 0 {
		return fleetTasks
	}
	return max(fleetTasks, (users+n-1)/n)
}

// runFleetSharded is runFleet with the fleet run as shards shards by tasks tasks, and
// the daily run run passes times.
func runFleetSharded(tb testing.TB, opts akahutest.Options, shards, tasks, passes int) fleetResult {
	tb.Helper()
	srv := akahutest.NewServer(opts)
	defer srv.Close()
	o := srv.Options()
	dir := tb.TempDir()
	tokens := filepath.Join(tb.TempDir(), "tokens")
	var list bytes.Buffer
	ids := os.Getenv("FLEET_IDS") == "1"
	for _, u := range srv.Users() {
		list.WriteString(u.Token)
		if ids {
			list.WriteString(" " + u.ID) // the tokens file's optional user id
		}
		list.WriteString("\n")
	}
	if err := os.WriteFile(tokens, list.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	var res fleetResult
	for _, u := range srv.Users() {
		for _, id := range srv.AccountIDs(u.ID) {
			if info, _ := srv.Account(id); info.HasTransactions {
				res.Accounts++
			}
		}
	}
	// Runs happen the morning after the history's last day (backfill) and the
	// morning after that (daily).
	morning := func(days int) time.Time {
		return time.Date(o.To.Year(), o.To.Month(), o.To.Day()+days, 9, 0, 0, 0, auckland)
	}
	backfill := fleetJob{URL: srv.URL, AppToken: srv.AppToken(), TokensFile: tokens, Dir: dir,
		Start: o.From.Format(time.DateOnly), Now: morning(1), Shards: shards, Tasks: tasks, Buckets: fleetBucketsFor(tb, o.Users, shards)}
	if !fleetCachedBackfill(tb, o, backfill, ids) {
		res.Backfill = runFleetShards(tb, srv, backfill).pass()
		fleetCacheBackfill(tb, o, backfill, ids)
	}

	fleetUpstreamChange(tb, srv)

	var backfilled string
	if passes > 1 {
		backfilled = filepath.Join(tb.TempDir(), "bucket")
		if err := os.CopyFS(backfilled, os.DirFS(dir)); err != nil {
			tb.Fatal(err)
		}
	}
	daily := backfill
	daily.Start, daily.Now = "", morning(2)
	for pass := range passes {
		if pass > 0 {
			// Every pass starts from the backfill's bucket and finds the same
			// changes upstream (runs do not change the fake).
			if err := os.RemoveAll(dir); err != nil {
				tb.Fatal(err)
			}
			if err := os.CopyFS(dir, os.DirFS(backfilled)); err != nil {
				tb.Fatal(err)
			}
		}
		res.Daily.add(runFleetShards(tb, srv, daily).pass())
	}
	return res
}

// fleetBackfillCache is FLEET_BACKFILL_CACHE: a directory where a population's
// bucket after its backfill is kept, so that experiments on the daily run can skip
// the backfill (its figures are then not reported). The fake is deterministic, so
// the daily run finds the same fake and the same bucket.
func fleetBackfillCache(o akahutest.Options, job fleetJob, ids bool) string {
	dir := os.Getenv("FLEET_BACKFILL_CACHE")
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("seed%d-users%d-dense%d-%d-shards%d-buckets%d-ids%t",
		o.Seed, o.Users, o.DenseEvery, o.DenseTxPerAccountPerMonth, job.Shards, job.Buckets, ids))
}

// fleetCachedBackfill copies a cached backfill's bucket into job.Dir, if there is one.
func fleetCachedBackfill(tb testing.TB, o akahutest.Options, job fleetJob, ids bool) bool {
	tb.Helper()
	cache := fleetBackfillCache(o, job, ids)
	if cache == "" {
		return false
	}
	if _, err := os.Stat(filepath.Join(cache, "done")); err != nil {
		return false
	}
	if err := os.CopyFS(job.Dir, os.DirFS(filepath.Join(cache, "bucket"))); err != nil {
		tb.Fatalf("cached backfill: %v", err)
	}
	tb.Logf("backfill copied from %s (not run, not reported)", cache)
	return true
}

// fleetCacheBackfill keeps job.Dir in the backfill cache, if there is one.
func fleetCacheBackfill(tb testing.TB, o akahutest.Options, job fleetJob, ids bool) {
	tb.Helper()
	cache := fleetBackfillCache(o, job, ids)
	if cache == "" {
		return
	}
	if err := os.RemoveAll(cache); err != nil {
		tb.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(cache, "bucket"), os.DirFS(job.Dir)); err != nil {
		tb.Fatalf("cache backfill: %v", err)
	}
	if err := os.WriteFile(filepath.Join(cache, "done"), nil, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// fleetUpstreamChange is a day's change upstream: on a few accounts each (one in
// 200 users, at least 3), a new transaction, a changed description, a deleted
// transaction, all in the last three weeks.
func fleetUpstreamChange(tb testing.TB, srv *akahutest.Server) {
	tb.Helper()
	o := srv.Options()
	users := srv.Users()
	k := max(3, len(users)/200)
	recent := akahu.LocalDates(o.To.AddDate(0, 0, -21), o.To, auckland)
	added, changed, deleted := 0, 0, 0
	for i := 0; i < len(users) && (added < k || changed < k || deleted < k); i += max(1, len(users)/(4*k)) {
		for _, id := range srv.AccountIDs(users[i].ID) {
			if info, _ := srv.Account(id); !info.HasTransactions {
				continue
			}
			if added < k {
				srv.AddTransaction(id, o.To, "-42.00", "fleet benchmark new")
				added++
			}
			txs := srv.Settled(id, recent.Start, recent.End)
			if len(txs) > 0 && changed < k {
				if err := srv.SetDescription(txs[0].ID, "fleet benchmark changed"); err != nil {
					tb.Fatal(err)
				}
				changed++
			}
			if len(txs) > 1 && deleted < k {
				if err := srv.DeleteTransaction(txs[len(txs)-1].ID); err != nil {
					tb.Fatal(err)
				}
				deleted++
			}
		}
	}
}

// fleetJob is one fleet run; the child gets it with its Task set, and runs shards
// Task, Task+Tasks, … one after another.
type fleetJob struct {
	URL, AppToken string
	TokensFile    string // one user token a line (the fake's synthetic tokens)
	Dir           string // the local bucket every shard and run shares
	Start         string // "" for a daily run
	Now           time.Time
	Task, Tasks   int
	Shards        int
	Buckets       int
}

// fleetBucketsFor is the bucket count of a fleet of users run as shards shards:
// fleetBucketsPerShard a shard, or with FLEET_USERS_PER_BUCKET set, one bucket per
// that many users (a partition then holds as many users' rows whatever the fleet's
// size).
func fleetBucketsFor(tb testing.TB, users, shards int) int {
	s := os.Getenv("FLEET_USERS_PER_BUCKET")
	if s == "" {
		return fleetBucketsPerShard * shards
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("FLEET_USERS_PER_BUCKET %q: want a user count", s)
	}
	return max(1, (users+n-1)/n)
}

// runFleetShards runs the job's tasks one after another, each in a child process
// that runs its shards in turn, and adds up their figures; the minimum is computed
// from the fake over the range the shards' manifests report.
func runFleetShards(tb testing.TB, srv *akahutest.Server, job fleetJob) fleetRunResult {
	tb.Helper()
	var out fleetRunResult
	var start, end string
	for task := range job.Tasks {
		job.Task = task
		srv.ResetStats()
		c := runFleetChild(tb, job)
		st := srv.Stats()
		tb.Logf("task %d: runs' peaks, MiB: RSS %v, Go %v, heap %v, live %v; anonymous RSS %v, at start %v; live after, KiB: %v; data %q", task, c.RunPeaksMiB, c.RunGoMiB, c.RunHeapMiB, c.RunLiveMiB, c.RunAnonMiB, c.RunStartAnonMiB, c.RunRetainedKiB, c.RunData)
		if c.Err != "" {
			tb.Fatalf("task %d of %s run: %s", task, map[bool]string{true: "backfill", false: "daily"}[job.Start != ""], c.Err)
		}
		out.add(fleetRunResult{Requests: st.Requests, Pages: st.Pages, Wall: time.Duration(c.WallNs), CPU: time.Duration(c.CPUNs),
			PeakRSSKiB: c.MaxRSSKiB, RunPeaks: c.RunPeaksMiB, RunAnon: c.RunAnonMiB, PeakLive: c.PeakLive, IO: c.IO, Inserted: c.Inserted, Updated: c.Updated, Deleted: c.Deleted,
			Failures: c.Failures, Spill: c.Spill})
		if start == "" || (c.RangeStart != "" && c.RangeStart < start) {
			start = c.RangeStart
		}
		end = max(end, c.RangeEnd)
	}
	if out.Failures > 0 {
		tb.Fatalf("%d failures in the fleet run", out.Failures)
	}
	from, err1 := time.ParseInLocation(time.DateOnly, start, auckland)
	to, err2 := time.ParseInLocation(time.DateOnly, end, auckland)
	if err1 != nil || err2 != nil {
		tb.Fatalf("shard manifests report range %q..%q", start, end)
	}
	out.Minimum, out.Served = fleetMinimum(srv, akahu.LocalDates(from, to, auckland))
	return out
}

// fleetMinimum is the fewest requests a fleet run over w can make, and the settled
// transactions in w: per account with TRANSACTIONS ⌈n/PageSize⌉ pages, at least
// one, plus fleetPerUserCalls per user.
func fleetMinimum(srv *akahutest.Server, w akahu.Window) (minimum, served int64) {
	page := srv.Options().PageSize
	for _, u := range srv.Users() {
		minimum += fleetPerUserCalls
		for _, id := range srv.AccountIDs(u.ID) {
			if info, _ := srv.Account(id); !info.HasTransactions {
				continue
			}
			n := srv.CountSettled(id, w.Start, w.End)
			served += int64(n)
			minimum += int64(max(1, (n+page-1)/page))
		}
	}
	return minimum, served
}

// The child half.

// fleetChildEnv carries a fleetJob as JSON to the child.
const fleetChildEnv = "AKAHU_PARQUET_FLEET_CHILD"

// fleetChildPrefix starts the child's result line on stdout.
const fleetChildPrefix = "FLEET_CHILD_RESULT "

// fleetChildResult is what a shard's child reports.
type fleetChildResult struct {
	Err                        string
	WallNs                     int64
	CPUNs                      int64    // the child's CPU time (user + system) during the run
	MaxRSSKiB                  int64    // the child's own peak RSS (ownPeakRSSKiB)
	RunPeaksMiB                []int64  // each shard run's own peak RSS, in order (resetPeakRSS between runs)
	RunLiveMiB                 []uint64 // each shard run's peak live heap, in order
	RunHeapMiB                 []uint64 // each shard run's peak heap in use
	RunGoMiB                   []uint64 // each shard run's peak Go memory (mapped, unreleased)
	RunAnonMiB                 []int64  // each shard run's peak anonymous resident memory (sampled RssAnon)
	RunRetainedKiB             []uint64 // the live heap after each run, after a GC: what the next run starts from
	RunStartAnonMiB            []int64  // anonymous resident memory as each run starts (and after the last)
	RunData                    []string // each shard run's data: rows inserted/updated/deleted, objects written, spill MB, held partitions parked
	PeakLive                   uint64   // peak heap marked live by a GC cycle (memSampler)
	PeakHeap                   uint64   // peak heap in use: objects and unswept spans
	IO                         bucketIO
	Inserted, Updated, Deleted int64
	Failures                   int
	Spill                      pipeline.SpillStats
	RangeStart, RangeEnd       string
}

func runFleetChild(tb testing.TB, job fleetJob) fleetChildResult {
	tb.Helper()
	spec, _ := json.Marshal(job)
	var res fleetChildResult
	runChild(tb, "TestFleetChild", fleetChildEnv, spec, "3h", fleetChildPrefix, &res)
	return res
}

// TestFleetChild is not a test: it is the child process of the fleet benchmark (one
// task: its shards' runs in turn, sharing a StateCache as the command's do) and
// skips unless fleetChildEnv is set.
func TestFleetChild(t *testing.T) {
	var job fleetJob
	startChild(t, fleetChildEnv, "BenchmarkFleet", &job)
	client, err := akahu.New(akahu.Config{BaseURL: job.URL, AppToken: akahu.Token(job.AppToken)})
	if err != nil {
		t.Fatal(err)
	}
	// As the command does: each run reads the tokens file and keeps its own users'.
	if _, err := pipeline.CheckTokensFile(job.TokensFile); err != nil {
		t.Fatal(err)
	}
	lb, err := bucket.NewLocal(job.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cb := &meteredBucket{Bucket: lb}
	// Profiles, if asked for, go to FILE.{backfill,daily}.shardN.
	profileName := func(env string) string {
		if name := os.Getenv(env); name != "" {
			return fmt.Sprintf("%s.%s.task%d", name, map[bool]string{true: "backfill", false: "daily"}[job.Start != ""], job.Task)
		}
		return ""
	}
	if profileName(benchChildHeapProfile) != "" {
		runtime.MemProfileRate = 16 << 10 // finer than the default 512 KiB: these profiles look for a few MiB
	}
	sampler := startMemSampler(t, profileName(benchChildHeapProfile))
	defer startCPUProfile(t, profileName(benchChildCPUProfile))()
	began := time.Now()
	cpu0 := processCPU()
	t0 := time.Now()
	var res fleetChildResult
	res.RunStartAnonMiB = append(res.RunStartAnonMiB, int64(rssAnon()>>20))
	cfg := pipeline.Config{Out: cb, Source: client, Tokens: pipeline.TokensFile(job.TokensFile),
		Now: func() time.Time { return job.Now.Add(time.Since(began)) }, Workers: benchWorkers, Start: job.Start,
		Shards: job.Shards, Buckets: job.Buckets}
	pipeline.RunShards(context.Background(), cfg, pipeline.TaskShards(job.Task, job.Tasks, job.Shards), func(shard int, m *pipeline.Manifest, err error) bool {
		if err != nil {
			res.Err = fmt.Sprintf("shard %d: %v", shard, err)
		}
		kib := ownPeakRSSKiB(t)
		res.MaxRSSKiB = max(res.MaxRSSKiB, kib)
		res.RunPeaksMiB = append(res.RunPeaksMiB, kib>>10)
		live, heap, gomem, anon := sampler.lap()
		res.RunAnonMiB = append(res.RunAnonMiB, int64(anon>>20))
		res.RunLiveMiB = append(res.RunLiveMiB, live>>20)
		res.RunHeapMiB = append(res.RunHeapMiB, heap>>20)
		res.RunGoMiB = append(res.RunGoMiB, gomem>>20)
		// The next run's peak starts from what this one leaves, not from its
		// garbage: RunShards frees it before the next run, but only after this.
		// Twice: what sync.Pools keep survives one collection.
		liveAfterFree()
		res.RunRetainedKiB = append(res.RunRetainedKiB, liveAfterFree()>>10)
		if name := profileName(benchChildHeapProfile); name != "" {
			writeHeapProfile(t, name+".retained")
		}
		resetPeakRSS(t)
		res.RunStartAnonMiB = append(res.RunStartAnonMiB, int64(rssAnon()>>20))
		if m != nil {
			res.RunData = append(res.RunData, fmt.Sprintf("%d/%d/%d o%d s%.1f p%d", m.Counts.Inserted, m.Counts.Updated, m.Counts.Deleted, len(m.Objects), float64(m.Spill.Bytes)/1e6, m.Spill.HeldParked))
			res.Inserted, res.Updated, res.Deleted = res.Inserted+m.Counts.Inserted, res.Updated+m.Counts.Updated, res.Deleted+m.Counts.Deleted
			res.Failures += len(m.Failures)
			res.Spill.Bytes += m.Spill.Bytes
			res.Spill.HeldParked += m.Spill.HeldParked
			if res.RangeStart == "" || (m.Range.Start != "" && m.Range.Start < res.RangeStart) {
				res.RangeStart = m.Range.Start
			}
			res.RangeEnd = max(res.RangeEnd, m.Range.End)
		}
		return err == nil
	})
	wall, cpu := time.Since(t0), processCPU()-cpu0
	sampler.done()
	res.WallNs, res.CPUNs, res.IO, res.PeakLive, res.PeakHeap = wall.Nanoseconds(), cpu.Nanoseconds(), cb.snapshot(), sampler.peakLive, sampler.peakHeap
	res.MaxRSSKiB = max(res.MaxRSSKiB, ownPeakRSSKiB(t))
	out, _ := json.Marshal(res)
	fmt.Printf("\n%s%s\n", fleetChildPrefix, out)
}

// bucketIO counts a bucket's operations and bytes.
type bucketIO struct {
	Gets, Attrs, Puts, Deletes, Lists int64
	BytesRead, BytesWritten           int64
	// RangedBytes are the bytes of BytesRead read by range (footers and column
	// chunks); WholeTx the bytes of transactions partitions read whole.
	RangedBytes, WholeTx int64
	// StateBytes are the bytes put under _manifests/, _inflight/ and _state/:
	// manifests, in-flight markers and state objects.
	StateBytes int64
}

func (a *bucketIO) add(b bucketIO) {
	a.Gets += b.Gets
	a.Attrs += b.Attrs
	a.Puts += b.Puts
	a.Deletes += b.Deletes
	a.Lists += b.Lists
	a.BytesRead += b.BytesRead
	a.RangedBytes += b.RangedBytes
	a.WholeTx += b.WholeTx
	a.BytesWritten += b.BytesWritten
	a.StateBytes += b.StateBytes
}

// meteredBucket counts what goes through it (errors included: an operation
// attempted is an operation billed).
type meteredBucket struct {
	bucket.Bucket
	mu sync.Mutex
	io bucketIO
}

func (c *meteredBucket) count(f func(*bucketIO)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.io)
}

func (c *meteredBucket) snapshot() bucketIO {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.io
}

func (c *meteredBucket) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	data, a, err := c.Bucket.Get(ctx, name)
	c.count(func(io *bucketIO) {
		io.Gets++
		io.BytesRead += int64(len(data))
		if strings.HasPrefix(name, "transactions/") {
			io.WholeTx += int64(len(data))
		}
	})
	return data, a, err
}

func (c *meteredBucket) GetRange(ctx context.Context, name string, generation, offset, length int64) ([]byte, error) {
	data, err := c.Bucket.GetRange(ctx, name, generation, offset, length)
	c.count(func(io *bucketIO) { io.Gets++; io.BytesRead += int64(len(data)); io.RangedBytes += int64(len(data)) })
	return data, err
}

func (c *meteredBucket) Attrs(ctx context.Context, name string) (bucket.Attrs, error) {
	c.count(func(io *bucketIO) { io.Attrs++ })
	return c.Bucket.Attrs(ctx, name)
}

func (c *meteredBucket) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	c.count(func(io *bucketIO) {
		io.Puts++
		io.BytesWritten += int64(len(data))
		if isStateObject(name) {
			io.StateBytes += int64(len(data))
		}
	})
	return c.Bucket.Put(ctx, name, data, cond)
}

func (c *meteredBucket) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	c.count(func(io *bucketIO) { io.Deletes++ })
	return c.Bucket.Delete(ctx, name, cond)
}

func (c *meteredBucket) List(ctx context.Context, prefix string) ([]bucket.Attrs, error) {
	c.count(func(io *bucketIO) { io.Lists++ })
	return c.Bucket.List(ctx, prefix)
}

func (c *meteredBucket) ListFrom(ctx context.Context, prefix, start string) ([]bucket.Attrs, error) {
	c.count(func(io *bucketIO) { io.Lists++ })
	return c.Bucket.ListFrom(ctx, prefix, start)
}

// CleanTemp keeps the local bucket's TempCleaner visible through the wrapper.
func (c *meteredBucket) CleanTemp(ctx context.Context, olderThan time.Duration) ([]string, error) {
	if tc, ok := c.Bucket.(bucket.TempCleaner); ok {
		return tc.CleanTemp(ctx, olderThan)
	}
	return nil, nil
}

func isStateObject(name string) bool {
	for _, p := range []string{"_manifests/", "_inflight/", "_state/"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
