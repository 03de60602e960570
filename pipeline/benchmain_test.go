package pipeline_test

// The child-process half of BenchmarkPeakRSS: the parent serves the fake Akahu and
// re-executes this test binary with benchChildEnv set; TestBenchChild then runs one
// backfill against the parent's fake and prints its figures on one line. Its peak
// RSS is its own (ownPeakRSSKiB), so it covers the pipeline, the Akahu client and the
// Go runtime, and nothing of the fake or of earlier benchmarks.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// benchChildEnv carries a benchChildJob as JSON to the child.
const benchChildEnv = "AKAHU_PARQUET_BENCH_CHILD"

// benchChildHeapProfile, if set in the benchmark's environment, names files the
// child rewrites with a heap profile (after a forced GC), FILE.runN for its Nth run
// (memSampler.lap starts the next), each time the run's live heap (as the last GC
// cycle marked it) reaches a new peak 5% above the last profiled one: `go tool pprof
// -top -sample_index inuse_space FILE.runN` then shows what the run holds near its
// peak. (Not at the peaks of the heap in use: those follow the GC's pacing, and a
// profile written there missed the live peak by half.) It perturbs the figures.
const benchChildHeapProfile = "AKAHU_PARQUET_BENCH_HEAPPROFILE"

// benchChildCPUProfile, if set in the benchmark's environment, is a file the child
// writes a CPU profile of its run to (the pipeline and client only: the fake runs in
// the parent); the fleet benchmark's children write FILE.backfill.shardN and
// FILE.daily.shardN.
const benchChildCPUProfile = "AKAHU_PARQUET_BENCH_CPUPROFILE"

// benchChildPrefix starts the child's result line on stdout.
const benchChildPrefix = "BENCH_CHILD_RESULT "

// benchChildJob is what the child runs: a backfill of the fake at URL.
type benchChildJob struct {
	URL      string
	AppToken string
	Tokens   []string // the fake's synthetic user tokens (not secrets)
	Start    string
	End      string
	Now      time.Time
	Workers  int
	Months   int // month partitions the backfill writes (bucket count 1)
}

// benchChildResult is what the child reports.
type benchChildResult struct {
	Inserted     int64
	UploadBytes  int64
	Objects      int
	WallNs       int64
	CPUNs        int64
	MaxRSSKiB    int64  // the child's own peak RSS (ownPeakRSSKiB)
	PeakGoBytes  uint64 // peak of the Go runtime's mapped, unreleased memory, sampled every 20ms
	PeakHeapLive uint64 // peak heap in use (objects + unswept), sampled every 20ms
	PeakLive     uint64 // peak heap marked live by a GC cycle: what the run really holds
	NumGC        uint32
	// PeakBacklog is the most month partitions whose windows were all extracted
	// while their file was not yet being written (windows done / windows per month
	// minus transactions objects written): the merge-and-write goroutine's backlog.
	PeakBacklog float64
	GOGC        string
	GOMEMLIMIT  string
}

// startChild begins a benchmark's child process (TestBenchChild, TestFleetChild):
// it skips unless env holds the job the parent benchmark sent, decodes it into job,
// and sets the extract command's defaults: its soft memory limit
// (pipeline.DefaultMemoryLimit) unless GOMEMLIMIT is set; GOGC stays the
// environment's (the parent may pass either through).
func startChild(t *testing.T, env, parent string, job any) {
	t.Helper()
	spec := os.Getenv(env)
	if spec == "" {
		t.Skip("child process of " + parent + "; runs only when " + env + " is set")
	}
	if err := json.Unmarshal([]byte(spec), job); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(pipeline.DefaultMemoryLimit)
	}
}

// TestBenchChild is not a test: it is the child process of BenchmarkPeakRSS and
// skips unless benchChildEnv is set.
func TestBenchChild(t *testing.T) {
	var job benchChildJob
	startChild(t, benchChildEnv, "BenchmarkPeakRSS", &job)
	client, err := akahu.New(akahu.Config{BaseURL: job.URL, AppToken: akahu.Token(job.AppToken)})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []akahu.Token
	for _, tok := range job.Tokens {
		tokens = append(tokens, akahu.Token(tok))
	}
	dir := t.TempDir()
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	now := func() time.Time { return job.Now.Add(time.Since(began)) }

	// Sample the Go runtime's memory while the run goes.
	sampler := startMemSampler(t, os.Getenv(benchChildHeapProfile))

	var blMu sync.Mutex
	var windowsDone, windowsTotal, written int
	var peakBacklog float64
	backlog := func() {
		if windowsTotal > 0 && job.Months > 0 {
			perPart := float64(windowsTotal) / float64(job.Months)
			peakBacklog = max(peakBacklog, float64(windowsDone)/perPart-float64(written))
		}
	}
	quarters := os.Getenv(benchChildHeapProfile + "_QUARTERS")
	progress := func(done, total int) {
		blMu.Lock()
		defer blMu.Unlock()
		windowsDone, windowsTotal = max(windowsDone, done), total
		backlog()
		// Heap profiles at 1/4, 2/4, 3/4 of the windows: what the run retains as it
		// goes (compare them with go tool pprof -base).
		if quarters != "" && total >= 4 && done%(total/4) == 0 && done < total {
			writeHeapProfile(t, fmt.Sprintf("%s.%d", quarters, done/(total/4)))
		}
	}
	beforeWrite := func(object string) {
		if strings.HasPrefix(object, "transactions/") {
			blMu.Lock()
			defer blMu.Unlock()
			written++
			backlog()
		}
	}

	defer startCPUProfile(t, os.Getenv(benchChildCPUProfile))()
	cpu0 := processCPU()
	t0 := time.Now()
	m, err := pipeline.Run(context.Background(), pipeline.Config{Out: b, Source: client, Users: tokens, Now: now,
		Workers: job.Workers, Start: job.Start, End: job.End, Progress: progress, BeforeWrite: beforeWrite})
	wall, cpu := time.Since(t0), processCPU()-cpu0
	sampler.done()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res := benchChildResult{Inserted: m.Counts.Inserted, UploadBytes: m.Uploads.Bytes, Objects: len(m.Objects),
		WallNs: wall.Nanoseconds(), CPUNs: cpu.Nanoseconds(), MaxRSSKiB: ownPeakRSSKiB(t), PeakGoBytes: sampler.peakGo,
		PeakHeapLive: sampler.peakHeap, PeakLive: sampler.peakLive, NumGC: ms.NumGC, PeakBacklog: peakBacklog, GOGC: os.Getenv("GOGC"), GOMEMLIMIT: os.Getenv("GOMEMLIMIT")}
	out, _ := json.Marshal(res)
	fmt.Printf("\n%s%s\n", benchChildPrefix, out)
}

// memSampler samples the Go runtime's memory every 20ms while a run goes: peak
// mapped-and-unreleased memory, peak heap in use (objects and unswept spans) and peak
// heap marked live by a GC cycle (what the run really holds). With
// benchChildHeapProfile set it also writes heap profiles at each lap's live-heap
// peaks (see there).
type memSampler struct {
	stop                       chan struct{}
	wg                         sync.WaitGroup
	peakGo, peakHeap, peakLive uint64

	mu      sync.Mutex
	lapLive uint64 // peak live heap since the last lap
	lapHeap uint64 // peak heap in use since the last lap
	lapGo   uint64 // peak Go memory (mapped, unreleased) since the last lap
	lapAnon uint64 // peak anonymous resident memory since the last lap
	laps    int    // laps ended: the run a profile is of
}

// lap returns the peaks of the live heap, the heap in use, the Go memory and the
// anonymous resident memory since the previous lap (or the start) and starts a new
// lap.
func (s *memSampler) lap() (live, heap, gomem, anon uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live, heap, gomem, anon = s.lapLive, s.lapHeap, s.lapGo, s.lapAnon
	s.lapLive, s.lapHeap, s.lapGo, s.lapAnon = 0, 0, 0, 0
	s.laps++
	return live, heap, gomem, anon
}

// rssAnon returns the process's anonymous resident memory (RssAnon of
// /proc/self/status), bytes, or 0 where there is none to read. Unlike the peak RSS
// (VmHWM) it leaves out the pages of the binary mapped from the page cache, whose
// resident count depends on how the page cache holds the file (the same binary
// measured 42 and 56 MB of RssFile, by how it was written), not on the run.
func rssAnon() uint64 {
	kib, err := procStatusKiB("RssAnon")
	if err != nil {
		return 0
	}
	return uint64(kib) << 10
}

func startMemSampler(t *testing.T, profile string) *memSampler {
	s := &memSampler{stop: make(chan struct{})}
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"}}
	var profiled uint64 // live heap of the current lap's last profile
	profiledLap := 0
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(samples)
			gomem := samples[0].Value.Uint64() - samples[1].Value.Uint64()
			heap := samples[2].Value.Uint64() + samples[3].Value.Uint64()
			live := samples[4].Value.Uint64()
			anon := rssAnon()
			s.peakGo, s.peakHeap, s.peakLive = max(s.peakGo, gomem), max(s.peakHeap, heap), max(s.peakLive, live)
			s.mu.Lock()
			s.lapGo, s.lapHeap, s.lapLive, s.lapAnon = max(s.lapGo, gomem), max(s.lapHeap, heap), max(s.lapLive, live), max(s.lapAnon, anon)
			lap := s.laps
			s.mu.Unlock()
			if lap != profiledLap {
				profiled, profiledLap = 0, lap
			}
			if profile != "" && live > profiled*21/20 {
				profiled = live
				writeHeapProfile(t, fmt.Sprintf("%s.run%d", profile, lap))
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// done stops the sampling; the peaks are final after it returns.
func (s *memSampler) done() {
	close(s.stop)
	s.wg.Wait()
}

// liveAfterFree collects garbage, returns the freed memory to the system
// (debug.FreeOSMemory) and returns the live heap.
func liveAfterFree() uint64 {
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func writeHeapProfile(t *testing.T, name string) {
	runtime.GC()
	f, err := os.Create(name)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Error(err)
	}
}

// runChild re-executes this test binary to run test alone, with env=spec in its
// environment, decodes the JSON its stdout prints after prefix into out, and returns
// the child's process state. (Its rusage is no measure of the child's peak RSS: see
// ownPeakRSSKiB.)
func runChild(tb testing.TB, test, env string, spec []byte, timeout, prefix string, out any) *os.ProcessState {
	tb.Helper()
	bin := childBinary(tb)
	defer os.Remove(bin)
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.bench=^$", "-test.count=1", "-test.timeout="+timeout)
	cmd.Env = append(os.Environ(), env+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s: %v\n%s%s", test, err, stdout.Bytes(), stderr.Bytes())
	}
	found := false
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			if err := json.Unmarshal([]byte(rest), out); err != nil {
				tb.Fatalf("%s result %q: %v", test, rest, err)
			}
			found = true
		}
	}
	if !found {
		tb.Fatalf("%s printed no result:\n%s%s", test, stdout.Bytes(), stderr.Bytes())
	}
	return cmd.ProcessState
}

// childBinary returns a fresh copy of this test binary for one child process. A child's peak RSS counts the binary's pages mapped from the
// page cache, and how many are resident depends on how the file came into it: the
// same binary run as the linker left it and as a copy measured 56 and 42 MB of
// RssFile. Every child runs a copy made the same way, so passes compare; the caller
// removes it.
func childBinary(tb testing.TB) string {
	tb.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		tb.Fatalf("child binary: %v", err)
	}
	defer src.Close()
	dst, err := os.CreateTemp("", "akahu-bench-child-*")
	if err != nil {
		tb.Fatalf("child binary: %v", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		tb.Fatalf("child binary: copy: %v", err)
	}
	if err := dst.Chmod(0o700); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		tb.Fatalf("child binary: %v", err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatalf("child binary: %v", err)
	}
	return dst.Name()
}

// ownPeakRSSKiB returns the peak resident set of this process's own memory: VmHWM of
// /proc/self/status. Not getrusage: Go starts a child with vfork (the child shares
// its parent's memory until exec), and Linux records the memory it leaves at exec in
// the child's ru_maxrss, so a child's rusage (RUSAGE_SELF, or its parent's wait4)
// reports at least its parent's peak at the time of the exec: for the benchmarks,
// the fake Akahu's, which grows with the fleet. VmHWM belongs to the memory the
// child got at exec. Without /proc (not Linux) the benchmark cannot tell and fails.
func ownPeakRSSKiB(tb testing.TB) int64 {
	tb.Helper()
	kib, err := procStatusKiB("VmHWM")
	if err != nil {
		tb.Fatalf("peak RSS: %v", err)
	}
	return kib
}

// procStatusKiB reads one "Name: N kB" field of /proc/self/status.
func procStatusKiB(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				return 0, fmt.Errorf("%q: %w", line, err)
			}
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// resetPeakRSS resets this process's VmHWM to its current resident set (Linux:
// "5" to /proc/self/clear_refs), so that the next ownPeakRSSKiB is the peak since.
func resetPeakRSS(tb testing.TB) {
	tb.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset peak RSS: %v", err)
	}
}

// rssChildEnv carries TestRSSChild's job (a size to touch, in MiB).
const rssChildEnv = "AKAHU_PARQUET_RSS_CHILD"

// rssChildPrefix starts TestRSSChild's result line.
const rssChildPrefix = "RSS_CHILD_RESULT "

// TestRSSChild is not a test: it is the child process of TestChildPeakRSSIsItsOwn
// and skips unless rssChildEnv is set. It touches the memory it is told to and
// reports its peak RSS as the benchmarks' children do.
func TestRSSChild(t *testing.T) {
	var mib int
	startChild(t, rssChildEnv, "TestChildPeakRSSIsItsOwn", &mib)
	buf := make([]byte, mib<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	runtime.KeepAlive(buf)
	out, _ := json.Marshal(ownPeakRSSKiB(t))
	fmt.Printf("\n%s%s\n", rssChildPrefix, out)
}

// TestChildPeakRSSIsItsOwn: the peak RSS the benchmarks report for a child process
// (a shard run, a backfill) is the child's own, not its parent's, which serves the
// fake Akahu and grows with the fleet. The parent here holds 160 MiB and the child
// touches 8 MiB: the child must report less than the parent holds, and more than it
// touched. (The child's rusage, which the benchmarks used to report, says at least
// 160 MiB on Linux: see ownPeakRSSKiB.)
func TestChildPeakRSSIsItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc: the benchmarks' peak RSS needs Linux")
	}
	parent := make([]byte, 160<<20)
	for i := 0; i < len(parent); i += 4096 {
		parent[i] = 1
	}
	spec, _ := json.Marshal(8)
	var kib int64
	state := runChild(t, "TestRSSChild", rssChildEnv, spec, "2m", rssChildPrefix, &kib)
	runtime.KeepAlive(parent)
	if ru, ok := state.SysUsage().(*syscall.Rusage); ok {
		t.Logf("child's own peak %d MiB; its rusage says %d MiB", kib>>10, ru.Maxrss>>10)
	}
	if kib < 8<<10 || kib >= 160<<10 {
		t.Errorf("child's peak RSS %d MiB: want at least the 8 MiB it touched and less than the parent's 160 MiB", kib>>10)
	}
}

// startCPUProfile writes a CPU profile of this process to name, if set, until the
// returned function is called.
func startCPUProfile(t *testing.T, name string) (stop func()) {
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
