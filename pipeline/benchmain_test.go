package pipeline_test

// The child-process half of BenchmarkPeakRSS: the parent serves the fake Akahu and
// re-executes this test binary with benchChildEnv set; TestBenchChild then runs one
// backfill against the parent's fake and prints its figures on one line. Peak RSS
// is read by the parent from the child's rusage, so it covers the pipeline, the
// Akahu client and the Go runtime, and nothing of the fake or of earlier benchmarks.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
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
}

// benchChildResult is what the child reports.
type benchChildResult struct {
	Inserted     int64
	UploadBytes  int64
	Objects      int
	WallNs       int64
	CPUNs        int64
	MaxRSSKiB    int64  // the child's own view (getrusage RUSAGE_SELF), a cross-check
	PeakGoBytes  uint64 // peak of the Go runtime's mapped, unreleased memory, sampled every 20ms
	PeakHeapLive uint64 // peak heap in use (objects + unswept), sampled every 20ms
	NumGC        uint32
	GOGC         string
	GOMEMLIMIT   string
}

// TestBenchChild is not a test: it is the child process of BenchmarkPeakRSS and
// skips unless benchChildEnv is set.
func TestBenchChild(t *testing.T) {
	spec := os.Getenv(benchChildEnv)
	if spec == "" {
		t.Skip("child process of BenchmarkPeakRSS; runs only when " + benchChildEnv + " is set")
	}
	var job benchChildJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	// No GOGC or GOMEMLIMIT is set here: the benchmark measures the defaults, the
	// way the CLI runs (the parent may pass either through the environment).
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
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	var peakGo, peakHeap uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(samples)
			peakGo = max(peakGo, samples[0].Value.Uint64()-samples[1].Value.Uint64())
			peakHeap = max(peakHeap, samples[2].Value.Uint64()+samples[3].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	cpu0 := processCPU()
	t0 := time.Now()
	m, err := pipeline.Run(context.Background(), pipeline.Config{Out: b, Source: client, Users: tokens, Now: now,
		Workers: job.Workers, Start: job.Start, End: job.End})
	wall, cpu := time.Since(t0), processCPU()-cpu0
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res := benchChildResult{Inserted: m.Counts.Inserted, UploadBytes: m.Uploads.Bytes, Objects: len(m.Objects),
		WallNs: wall.Nanoseconds(), CPUNs: cpu.Nanoseconds(), MaxRSSKiB: ru.Maxrss, PeakGoBytes: peakGo,
		PeakHeapLive: peakHeap, NumGC: ms.NumGC, GOGC: os.Getenv("GOGC"), GOMEMLIMIT: os.Getenv("GOMEMLIMIT")}
	out, _ := json.Marshal(res)
	fmt.Printf("\n%s%s\n", benchChildPrefix, out)
}
