package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/akahu-etl/akahu-parquet/internal/faultproxy"
)

// TestBinaryGCSFaults runs the built binary against fake-gcs-server through a
// network that answers 5% of requests 503, loses the answer of 3% after the server
// applied them, resets 2% before the server sees them and delays 5%: a backfill,
// an idempotent re-run, an incremental run with a deletion and a move, and the
// crash matrix (a kill at every write point of a backfill and of the incremental
// run, each followed by a re-run), all through the faults. Every run that is not
// killed exits 0, and every dataset equals Akahu's, each deletion recorded once.
func TestBinaryGCSFaults(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(23))
	g := newGCSEmulator(t)
	p, err := faultproxy.New(faultproxy.Config{Target: "http://" + g.host, Seed: 5, Rules: []faultproxy.Rule{
		{Kind: faultproxy.Unavailable, Rate: 0.05},
		{Kind: faultproxy.LostAnswer, Rate: 0.03},
		{Kind: faultproxy.Reset, Rate: 0.02},
		{Kind: faultproxy.Slow, Rate: 0.05},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	env := []string{"STORAGE_EMULATOR_HOST=" + p.Host()}
	runs, kills := 0, 0
	run := func(bucket string, extraEnv []string, args ...string) binResult {
		t.Helper()
		r := f.exec(t, append(env, extraEnv...), f.runArgs("gs://"+bucket+"/akahu/v1", args...)...)
		if r.signal == 0 {
			runs++
			if r.code != 0 {
				t.Fatalf("run on gs://%s through faults (%v): %s", bucket, p.Stats(), r)
			}
		} else {
			kills++
		}
		return r
	}
	o := f.srv.Options()
	check := func(bucket string, wantTombs map[string]int) {
		t.Helper()
		ds := mustReadDataset(t, g.download(t, bucket, "akahu/v1"))
		got, dups := ds.txByID()
		if len(dups) > 0 {
			t.Fatalf("gs://%s: duplicate ids: %v", bucket, dups)
		}
		if d := diffRows(f.truth(o.From, o.To), got); len(d) > 0 {
			t.Fatalf("gs://%s differs from Akahu:\n%s", bucket, strings.Join(d, "\n"))
		}
		tombs := ds.tombstoneCounts()
		for id, n := range wantTombs {
			if tombs[id] != n || ds.manifestDeletions()[id] != n {
				t.Errorf("gs://%s: %s has %d tombstones, %d in manifests, want %d", bucket, id, tombs[id], ds.manifestDeletions()[id], n)
			}
		}
		if len(tombs) != len(wantTombs) {
			t.Errorf("gs://%s: tombstones %v, want %v", bucket, tombs, wantTombs)
		}
		if len(ds.inflight) > 0 || len(ds.locks) > 0 {
			t.Errorf("gs://%s: leftovers %v %v", bucket, ds.inflight, ds.locks)
		}
	}

	g.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "warehouse"})
	run("warehouse", nil, f.rangeArgs()...)
	check("warehouse", nil)
	if r := run("warehouse", nil, f.rangeArgs()...); !strings.Contains(r.stdout, " 0 objects uploaded (0 bytes)") {
		t.Errorf("idempotent re-run through faults uploaded: %s", r.stdout)
	}

	// A backfill killed at every write point, then re-run, all through the faults.
	for n := 1; n < 80; n++ {
		bucket := fmt.Sprintf("backfill-crash-%d", n)
		g.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
		if r := run(bucket, []string{fmt.Sprintf("EXTRACT_TEST_KILL_AT=%d", n)}, f.rangeArgs()...); r.signal != syscall.SIGKILL {
			break
		}
		run(bucket, nil, f.rangeArgs()...)
		check(bucket, nil)
	}

	deleted := f.septemberChanges(t)
	incr := []string{"--start", "2026-09-01", "--end", "2026-09-30"}
	// The incremental run killed at every write point, then re-run; the first
	// bucket the kill does not reach is the plain incremental run.
	for n := 1; n < 40; n++ {
		bucket := fmt.Sprintf("crash-%d", n)
		g.copyBucket(t, "warehouse", bucket)
		r := run(bucket, []string{fmt.Sprintf("EXTRACT_TEST_KILL_AT=%d", n)}, incr...)
		if r.signal != syscall.SIGKILL {
			check(bucket, map[string]int{deleted: 1})
			run(bucket, nil, incr...) // and again: no deletion recorded twice
			check(bucket, map[string]int{deleted: 1})
			break
		}
		run(bucket, nil, incr...)
		check(bucket, map[string]int{deleted: 1})
	}
	s := p.Stats()
	t.Logf("binary on GCS through faults: %d runs exited 0 (%d more killed at a write point); %v", runs, kills, s)
	for _, k := range faultproxy.Kinds {
		if s.Faults[k] == 0 {
			t.Errorf("no %s injected: %v", k, s)
		}
	}
}
