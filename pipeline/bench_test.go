package pipeline_test

// End-to-end benchmarks of pipeline.Run against the fake Akahu (akahutest), run by
// `make bench`. Each benchmark does its whole workload once per iteration and reports
// its figures with b.ReportMetric; run one alone with
//
//	go test -run '^$' -bench BenchmarkBackfill -benchmem -benchtime 1x ./pipeline/
//
// The fake server runs in the same process (BenchmarkPeakRSS: in the parent process)
// and shares the CPU with the pipeline; figures taken on a shared 2-core machine vary
// from run to run by tens of percent.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// benchWorkers is the pipeline's Workers in every benchmark; the client keeps its
// default MaxInFlight, so the request concurrency is min(benchWorkers, MaxInFlight).
const benchWorkers = 8

// benchMonths returns inclusive local dates spanning exactly n whole months that end
// on 30 November 2026 (the month of akahutest.DefaultTo).
func benchMonths(n int) (from, to time.Time) {
	to = time.Date(2026, 11, 30, 0, 0, 0, 0, auckland)
	from = time.Date(2026, 12-time.Month(n), 1, 0, 0, 0, 0, auckland)
	return from, to
}

// backfillPopulation is ~100k settled transactions: 10 users × 5 accounts (the
// accounts with the TRANSACTIONS attribute, most of them) × 24 months.
func backfillPopulation() akahutest.Options {
	from, to := benchMonths(24)
	return akahutest.Options{Seed: 11, Users: 10, AccountsPerUser: 5, TxPerAccountPerMonth: 105,
		From: from, To: to, PageSize: 100}
}

// benchEnv is a fake Akahu, a client for it and a local bucket.
type benchEnv struct {
	srv      *akahutest.Server
	client   *akahu.Client
	tokens   []akahu.Token
	opts     akahutest.Options
	now      func() time.Time
	b        bucket.Bucket
	dir      string
	inflight *inflightMeter
	walks    *inflightMeter // cursor walks (Source.Transactions calls) in progress
	dials    atomic.Int64   // TCP connections the client opened
}

func newBenchEnv(b *testing.B, opts akahutest.Options) *benchEnv {
	b.Helper()
	srv := akahutest.NewServer(opts)
	b.Cleanup(srv.Close)
	e := &benchEnv{srv: srv, opts: srv.Options(), inflight: &inflightMeter{}, walks: &inflightMeter{}}
	hc := srv.Client()
	// Measure the requests in flight (for the latency-bound figures) around the
	// fake's own transport.
	e.inflight.next = hc.Transport
	hc.Transport = e.inflight
	// Count new connections: with 8 requests in flight and Go's default of 2 idle
	// connections per host, keep-alive connections may be closed and re-dialled.
	if tr, ok := e.inflight.next.(*http.Transport); ok {
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			e.dials.Add(1)
			return dial(ctx, network, addr)
		}
	}
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	e.client = client
	for _, u := range srv.Users() {
		e.tokens = append(e.tokens, akahu.Token(u.Token))
	}
	e.now = benchClock(e.opts.To)
	e.newBucket(b)
	return e
}

// benchClock starts the morning after the fake's last posting and advances in real
// time, strictly increasing: run ids begin with it and must keep their order.
func benchClock(to time.Time) func() time.Time {
	base, began := time.Date(to.Year(), to.Month(), to.Day()+1, 9, 0, 0, 0, auckland), time.Now()
	var mu sync.Mutex
	var last time.Time
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n := base.Add(time.Since(began))
		if !n.After(last) {
			n = last.Add(time.Millisecond)
		}
		last = n
		return n
	}
}

// newBucket points the env at a fresh, empty local bucket.
func (e *benchEnv) newBucket(b *testing.B) {
	b.Helper()
	e.dir = b.TempDir()
	lb, err := bucket.NewLocal(e.dir)
	if err != nil {
		b.Fatal(err)
	}
	e.b = lb
}

func (e *benchEnv) config() pipeline.Config {
	return pipeline.Config{Out: e.b, Source: meteredSource{e.client, e.walks}, Users: e.tokens, Now: e.now, Workers: benchWorkers,
		Start: e.opts.From.Format(time.DateOnly), End: e.opts.To.Format(time.DateOnly)}
}

// run runs the pipeline once over the fake's whole history and returns the manifest
// with the wall and CPU time (of this whole process: the fake included) it took.
func (e *benchEnv) run(b *testing.B) (m *pipeline.Manifest, wall, cpu time.Duration) {
	b.Helper()
	cpu0 := processCPU()
	t0 := time.Now()
	m, err := pipeline.Run(context.Background(), e.config())
	wall = time.Since(t0)
	cpu = processCPU() - cpu0
	if err != nil {
		b.Fatalf("run: %v", err)
	}
	return m, wall, cpu
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// noopWalk walks every (account, month) window of the population the way the
// pipeline does, benchWorkers at a time through the same client, and throws the
// pages away: the cost of the fake, loopback HTTP and the client's page decode,
// without normalise/merge/write.
func (e *benchEnv) noopWalk(b *testing.B) (items int64, wall, cpu time.Duration) {
	b.Helper()
	type job struct {
		tok  akahu.Token
		acct string
		w    akahu.Window
	}
	var jobs []job
	for i, u := range e.srv.Users() {
		for _, id := range e.srv.AccountIDs(u.ID) {
			if info, _ := e.srv.Account(id); !info.HasTransactions {
				continue
			}
			for m := e.opts.From; !m.After(e.opts.To); m = m.AddDate(0, 1, 0) {
				last := m.AddDate(0, 1, -1)
				jobs = append(jobs, job{e.tokens[i], id, akahu.LocalDates(m, last, auckland)})
			}
		}
	}
	ch := make(chan job)
	var n atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	cpu0 := processCPU()
	t0 := time.Now()
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				err := e.client.Transactions(context.Background(), j.tok, j.acct, j.w, func(p akahu.Page) error {
					n.Add(int64(len(p.Items)))
					return nil
				})
				if err != nil {
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	wall, cpu = time.Since(t0), processCPU()-cpu0
	if firstErr != nil {
		b.Fatalf("no-op walk: %v", firstErr)
	}
	return n.Load(), wall, cpu
}

// inflightMeter is an http.RoundTripper that integrates the number of requests in
// flight over time (request sent to response body closed is not tracked: only
// RoundTrip, i.e. until the response headers arrived, which with the fake's latency
// is where the time goes).
type inflightMeter struct {
	next http.RoundTripper

	mu       sync.Mutex
	n        int
	last     time.Time
	integral time.Duration // Σ in-flight × dt
	busy     time.Duration // time with ≥1 request in flight
	peak     int
	first    time.Time // first request sent
	lastDone time.Time // last response headers received
}

func (m *inflightMeter) step(d int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !m.last.IsZero() {
		dt := now.Sub(m.last)
		m.integral += time.Duration(m.n) * dt
		if m.n > 0 {
			m.busy += dt
		}
	}
	m.last = now
	if d > 0 && m.first.IsZero() {
		m.first = now
	}
	if d < 0 {
		m.lastDone = now
	}
	m.n += d
	m.peak = max(m.peak, m.n)
}

func (m *inflightMeter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last, m.integral, m.busy, m.peak, m.first, m.lastDone = time.Time{}, 0, 0, 0, time.Time{}, time.Time{}
}

func (m *inflightMeter) RoundTrip(req *http.Request) (*http.Response, error) {
	m.step(1)
	defer m.step(-1)
	return m.next.RoundTrip(req)
}

// meteredSource counts the cursor walks in progress.
type meteredSource struct {
	*akahu.Client
	walks *inflightMeter
}

func (s meteredSource) Transactions(ctx context.Context, user akahu.Token, accountID string, w akahu.Window, fn func(akahu.Page) error) error {
	s.walks.step(1)
	defer s.walks.step(-1)
	return s.Client.Transactions(ctx, user, accountID, w, fn)
}

// BenchmarkBackfill is a first backfill of ~100k transactions with no latency into a
// local bucket: the pipeline's CPU throughput, the fake included.
//
// Reported: tx/s and ns/tx (wall), cpu_ns/tx (process CPU: pipeline + fake + HTTP
// over loopback, so on 2 cores cpu_ns/tx ≈ 2 × ns/tx means both cores were busy),
// MB_written (data objects uploaded, from the manifest), and the same walk with a
// no-op consumer (noop_ns/tx, noop_cpu_ns/tx, fake_cpu_share = the no-op walk's CPU
// over the backfill's): the part of the cost that is the fake, HTTP and the client's
// page decode rather than normalise, merge and Parquet encoding.
func BenchmarkBackfill(b *testing.B) {
	e := newBenchEnv(b, backfillPopulation())
	total := e.srv.TotalSettledAll()
	var tx, bytes int64
	var wall, cpu time.Duration
	d0 := e.dials.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if i > 0 {
			e.newBucket(b)
		}
		b.StartTimer()
		m, w, c := e.run(b)
		if m.Counts.Inserted != int64(total) {
			b.Fatalf("backfill inserted %d transactions, the fake serves %d", m.Counts.Inserted, total)
		}
		tx += m.Counts.Inserted
		bytes += m.Uploads.Bytes
		wall += w
		cpu += c
	}
	b.StopTimer()
	dials := e.dials.Load() - d0
	items, nwall, ncpu := e.noopWalk(b)
	if items != int64(total) {
		b.Fatalf("no-op walk saw %d items, want %d", items, total)
	}
	b.ReportMetric(float64(total), "tx/run")
	b.ReportMetric(float64(tx)/wall.Seconds(), "tx/s")
	b.ReportMetric(float64(wall.Nanoseconds())/float64(tx), "ns/tx")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(tx), "cpu_ns/tx")
	b.ReportMetric(float64(bytes)/float64(b.N)/1e6, "MB_written")
	b.ReportMetric(float64(nwall.Nanoseconds())/float64(items), "noop_ns/tx")
	b.ReportMetric(float64(ncpu.Nanoseconds())/float64(items), "noop_cpu_ns/tx")
	b.ReportMetric(float64(ncpu)/float64(cpu/time.Duration(b.N)), "fake_cpu_share")
	b.ReportMetric(float64(dials)/float64(b.N), "dials")
}

// latencyPopulation: 4 users × 4 accounts × 36 months with ~400 transactions a month
// (4–5 pages of 100 per window plus the fake's empty pages, ~1950 pages in all) so
// that with 50 ms per page the run takes ~12–15 s at a concurrency of 8.
func latencyPopulation() akahutest.Options {
	from, to := benchMonths(36)
	return akahutest.Options{Seed: 13, Users: 4, AccountsPerUser: 4, TxPerAccountPerMonth: 400,
		From: from, To: to, PageSize: 100, PageLatency: benchPageLatency}
}

const benchPageLatency = 50 * time.Millisecond

// BenchmarkLatencyBound runs a backfill against a fake that sleeps 50 ms before every
// answer, the regime of a real backfill, where the API's latency and not the CPU
// bounds the run. The ideal is pages × 50 ms / concurrency, concurrency being
// min(Workers, client MaxInFlight) = 8; the target is ratio ≤ 1.15.
//
// Reported: wall_s, pages (transaction pages the fake answered), requests (every
// request: /me, /accounts and pending lists sleep too), ideal_s, ratio = wall/ideal,
// ideal_req_s and ratio_req (the same over every request), mean_inflight (the
// time-average of requests in flight; 8 is ideal) and peak_inflight, mean_walks (the
// time-average of cursor walks in progress: below 8 means the pipeline's scheduling
// starves the pool, above mean_inflight means time spent between pages), head_s (run
// start to the first request: dataset, lock, state) and tail_s (last response to the
// run's return: the last partitions' merge and write, the commit), dials (TCP
// connections opened) and cpu_s (process CPU, the fake included: far below wall_s,
// so the run is latency-bound unless other processes hold the cores).
func BenchmarkLatencyBound(b *testing.B) {
	e := newBenchEnv(b, latencyPopulation())
	concurrency := min(benchWorkers, akahu.DefaultMaxInFlight)
	var wall time.Duration
	var pages, requests int64
	var meanInflight, meanWalks float64
	var head, tail, cpu time.Duration
	var dials int64
	peak := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if i > 0 {
			e.newBucket(b)
		}
		e.srv.ResetStats()
		d0 := e.dials.Load()
		e.inflight.reset()
		e.walks.reset()
		b.StartTimer()
		t0 := time.Now()
		m, w, c := e.run(b)
		b.StopTimer()
		if m.Counts.Inserted != int64(e.srv.TotalSettledAll()) {
			b.Fatalf("inserted %d, want %d", m.Counts.Inserted, e.srv.TotalSettledAll())
		}
		dials += e.dials.Load() - d0
		cpu += c
		st := e.srv.Stats()
		wall += w
		pages += st.Pages
		requests += st.Requests
		e.inflight.mu.Lock()
		meanInflight += e.inflight.integral.Seconds() / w.Seconds()
		peak = max(peak, e.inflight.peak)
		head += e.inflight.first.Sub(t0)
		tail += t0.Add(w).Sub(e.inflight.lastDone)
		e.inflight.mu.Unlock()
		e.walks.mu.Lock()
		meanWalks += e.walks.integral.Seconds() / w.Seconds()
		e.walks.mu.Unlock()
		b.StartTimer()
	}
	n := float64(b.N)
	ideal := float64(pages) * benchPageLatency.Seconds() / float64(concurrency)
	idealReq := float64(requests) * benchPageLatency.Seconds() / float64(concurrency)
	b.ReportMetric(wall.Seconds()/n, "wall_s")
	b.ReportMetric(float64(pages)/n, "pages")
	b.ReportMetric(float64(requests)/n, "requests")
	b.ReportMetric(ideal/n, "ideal_s")
	b.ReportMetric(wall.Seconds()/ideal, "ratio")
	b.ReportMetric(idealReq/n, "ideal_req_s")
	b.ReportMetric(wall.Seconds()/idealReq, "ratio_req")
	b.ReportMetric(meanInflight/n, "mean_inflight")
	b.ReportMetric(float64(peak), "peak_inflight")
	b.ReportMetric(meanWalks/n, "mean_walks")
	b.ReportMetric(float64(dials)/n, "dials")
	b.ReportMetric(cpu.Seconds()/n, "cpu_s")
	b.ReportMetric(head.Seconds()/n, "head_s")
	b.ReportMetric(tail.Seconds()/n, "tail_s")
}

// BenchmarkIdempotentRerun backfills ~100k transactions (untimed), then re-runs over
// the same range against unchanged data. Reported: uploads_objects and uploads_bytes
// from the re-run's manifest (invariant 4: both must be 0), skipped_objects (data
// objects found unchanged) and the re-run's tx/s and ns/tx.
func BenchmarkIdempotentRerun(b *testing.B) {
	e := newBenchEnv(b, backfillPopulation())
	total := int64(e.srv.TotalSettledAll())
	var objects, bytes, skipped int64
	var wall time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if i > 0 {
			e.newBucket(b)
		}
		if m, _, _ := e.run(b); m.Counts.Inserted != total {
			b.Fatalf("backfill inserted %d, want %d", m.Counts.Inserted, total)
		}
		b.StartTimer()
		m, w, _ := e.run(b)
		b.StopTimer()
		if m.Counts.Unchanged != total {
			b.Errorf("re-run: %d unchanged of %d (counts %+v)", m.Counts.Unchanged, total, m.Counts)
		}
		if m.Uploads.Objects != 0 || m.Uploads.Bytes != 0 {
			b.Logf("NOT IDEMPOTENT: the re-run uploaded %d objects, %d bytes (want 0): %s", m.Uploads.Objects, m.Uploads.Bytes, uploadedPaths(m))
		}
		objects += m.Uploads.Objects
		bytes += m.Uploads.Bytes
		skipped += m.Uploads.Skipped
		wall += w
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(objects)/n, "uploads_objects")
	b.ReportMetric(float64(bytes)/n, "uploads_bytes")
	b.ReportMetric(float64(skipped)/n, "skipped_objects")
	b.ReportMetric(float64(total)*n/wall.Seconds(), "tx/s")
	b.ReportMetric(float64(wall.Nanoseconds())/(float64(total)*n), "ns/tx")
}

func uploadedPaths(m *pipeline.Manifest) string {
	var s string
	for i, o := range m.Objects {
		if i == 5 {
			return s + fmt.Sprintf(" … (%d objects)", len(m.Objects))
		}
		s += fmt.Sprintf(" %s %s (%d B)", o.Op, o.Path, o.Bytes)
	}
	return s
}

// rssPopulation is 200 accounts (50 users × 4; the ones with the TRANSACTIONS
// attribute carry the history) over the given number of months ending in November
// 2026, at a fixed density: ~2M transactions over 60 months, ~0.5M over 15. The size
// of a month partition is the same in both, so what grows is the backfill's length.
func rssPopulation(months int) akahutest.Options {
	from, to := benchMonths(months)
	opts := akahutest.Options{Seed: 17, Users: 50, AccountsPerUser: 4, From: from, To: to, PageSize: 100}
	// The density that gives 2M over 60 months, from a probe (construction is cheap).
	probe := opts
	probe.From, _ = benchMonths(60)
	probe.TxPerAccountPerMonth = 100
	opts.TxPerAccountPerMonth = int(100*2e6/float64(akahutest.New(probe).TotalSettledAll()) + 0.5)
	return opts
}

// peakRSS remembers the figures measured in this process, so the 2M sub-benchmark
// can report its ratio to 0.5M.
var peakRSS = map[string]benchChildResult{}

// BenchmarkPeakRSS backfills 0.5M and 2M transactions in a child process (the fake
// Akahu is served by this process) and reports the child's own peak RSS (ownPeakRSSKiB).
// Targets: 2M ≤ 300 MiB, and within 10% of 0.5M (ratio_2M/0.5M ≤ 1.10).
//
// Reported per size: peak_MiB (the child's peak RSS), peak_go_MiB (peak of the Go
// runtime's mapped memory not returned to the OS, sampled every 20 ms),
// peak_heap_MiB (peak heap in use, sampled), peak_live_MiB (the most heap a GC cycle
// found live: with GOGC=100 the heap may grow to about twice that), tx, tx/s, MB_written, GCs,
// peak_merge_backlog_parts (month partitions fully extracted but not yet written, at
// worst; the pipeline lets at most Workers+2 partitions be open); and for 2M
// ratio_2M/0.5M (the 0.5M child is run first if this process has not run it yet).
// The child runs as the extract command does: with its soft memory limit
// (pipeline.DefaultMemoryLimit) unless GOMEMLIMIT is set; GOGC is the environment's.
func BenchmarkPeakRSS(b *testing.B) {
	for _, size := range []struct {
		name   string
		months int
	}{{"0.5M", 15}, {"2M", 60}} {
		b.Run(size.name, func(b *testing.B) {
			var res benchChildResult
			for i := 0; i < b.N; i++ {
				res = runBenchChild(b, rssPopulation(size.months))
			}
			peakRSS[size.name] = res
			b.ReportMetric(float64(res.MaxRSSKiB)/1024, "peak_MiB")
			b.ReportMetric(float64(res.PeakGoBytes)/(1<<20), "peak_go_MiB")
			b.ReportMetric(float64(res.PeakHeapLive)/(1<<20), "peak_heap_MiB")
			b.ReportMetric(float64(res.PeakLive)/(1<<20), "peak_live_MiB")
			b.ReportMetric(float64(res.Inserted), "tx")
			b.ReportMetric(float64(res.Inserted)/(float64(res.WallNs)/1e9), "tx/s")
			b.ReportMetric(float64(res.CPUNs)/float64(res.Inserted), "child_cpu_ns/tx")
			b.ReportMetric(float64(res.UploadBytes)/1e6, "MB_written")
			b.ReportMetric(float64(res.NumGC), "GCs")
			b.ReportMetric(res.PeakBacklog, "peak_merge_backlog_parts")
			if size.name == "2M" {
				small, ok := peakRSS["0.5M"]
				if !ok {
					b.StopTimer()
					small = runBenchChild(b, rssPopulation(15))
					peakRSS["0.5M"] = small
				}
				b.ReportMetric(float64(res.MaxRSSKiB)/float64(small.MaxRSSKiB), "ratio_2M/0.5M")
			}
		})
	}
}

// runBenchChild serves opts from this process and runs one backfill of it in a
// child process (TestBenchChild), returning the child's figures (the peak RSS is the
// child's own: ownPeakRSSKiB).
func runBenchChild(b *testing.B, opts akahutest.Options) benchChildResult {
	b.Helper()
	srv := akahutest.NewServer(opts)
	defer srv.Close()
	o := srv.Options()
	months := (o.To.Year()-o.From.Year())*12 + int(o.To.Month()-o.From.Month()) + 1
	job := benchChildJob{URL: srv.URL, AppToken: srv.AppToken(), Workers: benchWorkers, Months: months,
		Start: o.From.Format(time.DateOnly), End: o.To.Format(time.DateOnly),
		Now: time.Date(o.To.Year(), o.To.Month(), o.To.Day()+1, 9, 0, 0, 0, auckland)}
	for _, u := range srv.Users() {
		job.Tokens = append(job.Tokens, u.Token)
	}
	spec, _ := json.Marshal(job)
	var res benchChildResult
	runChild(b, "TestBenchChild", benchChildEnv, spec, "10m", benchChildPrefix, &res)
	if want := int64(srv.TotalSettledAll()); res.Inserted != want {
		b.Fatalf("child inserted %d transactions, the fake serves %d", res.Inserted, want)
	}
	return res
}
