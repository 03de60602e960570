package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// gcsEmulator is fake-gcs-server listening on loopback for child processes, which
// reach it the way a user's binary would: through STORAGE_EMULATOR_HOST.
type gcsEmulator struct {
	srv  *fakestorage.Server
	host string
}

func newGCSEmulator(t *testing.T) *gcsEmulator {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return &gcsEmulator{srv: srv, host: strings.TrimPrefix(srv.URL(), "http://")}
}

func (g *gcsEmulator) env() []string { return []string{"STORAGE_EMULATOR_HOST=" + g.host} }

// download copies every object of bucket under prefix into a new directory, so the
// binary tests' dataset reader can check it.
func (g *gcsEmulator) download(t *testing.T, bucket, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	for _, o := range g.list(t, bucket, prefix+"/") {
		obj, err := g.srv.GetObject(bucket, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(o.Name, prefix+"/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, obj.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// list returns every object of bucket under prefix, page by page.
func (g *gcsEmulator) list(t *testing.T, bucket, prefix string) []fakestorage.ObjectAttrs {
	t.Helper()
	var out []fakestorage.ObjectAttrs
	opts := fakestorage.ListOptions{Prefix: prefix}
	for {
		resp, err := g.srv.ListObjectsWithOptionsPaginated(bucket, opts)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Objects...)
		if resp.NextPageToken == "" {
			return out
		}
		opts.PageToken = resp.NextPageToken
	}
}

// copyBucket seeds bucket dst with every object of src.
func (g *gcsEmulator) copyBucket(t *testing.T, src, dst string) {
	t.Helper()
	g.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: dst})
	for _, o := range g.list(t, src, "") {
		obj, err := g.srv.GetObject(src, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		g.srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: dst, Name: o.Name}, Content: obj.Content})
	}
}

// TestBinaryGCS runs the built binary against fake-gcs-server through
// STORAGE_EMULATOR_HOST, as a user would: a backfill, an idempotent re-run that
// uploads nothing, changes with deletions and a move, verify, and a crash at every
// write point of the incremental run followed by a re-run.
func TestBinaryGCS(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(23))
	g := newGCSEmulator(t)
	g.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "warehouse"})
	out := "gs://warehouse/akahu/v1"
	run := func(out string, extraEnv []string, args ...string) binResult {
		return f.exec(t, append(g.env(), extraEnv...), f.runArgs(out, args...)...)
	}
	if r := run(out, nil, f.rangeArgs()...); r.code != 0 {
		t.Fatalf("backfill to GCS: %s", r)
	}
	o := f.srv.Options()
	check := func(bucket string, wantTombs map[string]int) *dataset {
		t.Helper()
		ds := mustReadDataset(t, g.download(t, bucket, "akahu/v1"))
		got, dups := ds.txByID()
		if len(dups) > 0 {
			t.Fatalf("duplicate ids on GCS: %v", dups)
		}
		if d := diffRows(f.truth(o.From, o.To), got); len(d) > 0 {
			t.Fatalf("GCS dataset differs from Akahu:\n%s", strings.Join(d, "\n"))
		}
		tombs := ds.tombstoneCounts()
		for id, n := range wantTombs {
			if tombs[id] != n || ds.manifestDeletions()[id] != n {
				t.Errorf("%s: %d tombstones, %d in manifests, want %d", id, tombs[id], ds.manifestDeletions()[id], n)
			}
		}
		if len(tombs) != len(wantTombs) {
			t.Errorf("tombstones %v, want %v", tombs, wantTombs)
		}
		return ds
	}
	check("warehouse", nil)

	// A backfill into an empty prefix killed at every write point, then re-run.
	backfillPoints := 0
	for n := 1; n < 80; n++ {
		bucket := fmt.Sprintf("backfill-crash-%d", n)
		g.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
		r := run("gs://"+bucket+"/akahu/v1", []string{fmt.Sprintf("EXTRACT_TEST_KILL_AT=%d", n)}, f.rangeArgs()...)
		if r.signal != syscall.SIGKILL {
			if r.code != 0 {
				t.Fatalf("backfill kill point %d: run ended without the kill: %s", n, r)
			}
			break
		}
		backfillPoints++
		if r := run("gs://"+bucket+"/akahu/v1", nil, f.rangeArgs()...); r.code != 0 {
			t.Fatalf("re-run after backfill kill point %d: %s", n, r)
		}
		ds := check(bucket, nil)
		if len(ds.inflight) > 0 || len(ds.locks) > 0 {
			t.Errorf("backfill kill point %d: leftovers %v %v", n, ds.inflight, ds.locks)
		}
	}
	if backfillPoints < 5 {
		t.Fatalf("only %d backfill kill points on GCS", backfillPoints)
	}

	if r := run(out, nil, f.rangeArgs()...); r.code != 0 || !strings.Contains(r.stdout, " 0 objects uploaded (0 bytes)") {
		t.Fatalf("idempotent re-run on GCS: %s", r)
	}

	// Changes, then a crash at every write point of the incremental run.
	deleted := f.septemberChanges(t)
	incr := []string{"--start", "2026-09-01", "--end", "2026-09-30"}
	points := 0
	for n := 1; n < 40; n++ {
		bucket := fmt.Sprintf("crash-%d", n)
		g.copyBucket(t, "warehouse", bucket)
		r := run("gs://"+bucket+"/akahu/v1", []string{fmt.Sprintf("EXTRACT_TEST_KILL_AT=%d", n)}, incr...)
		if r.signal != syscall.SIGKILL {
			if r.code != 0 {
				t.Fatalf("kill point %d: run ended without the kill: %s", n, r)
			}
			check(bucket, map[string]int{deleted: 1})
			break // past the last write point
		}
		points++
		if r := run("gs://"+bucket+"/akahu/v1", nil, incr...); r.code != 0 {
			t.Fatalf("re-run after kill point %d: %s", n, r)
		}
		ds := check(bucket, map[string]int{deleted: 1})
		if len(ds.inflight) > 0 || len(ds.locks) > 0 {
			t.Errorf("kill point %d: leftovers %v %v", n, ds.inflight, ds.locks)
		}
	}
	if points < 5 {
		t.Fatalf("only %d kill points on GCS", points)
	}
	t.Logf("GCS: %d backfill and %d incremental kill points, each re-run restored the dataset", backfillPoints, points)
	if r := f.exec(t, g.env(), "verify", "--out", "gs://crash-1/akahu/v1"); r.code != 0 {
		t.Errorf("verify on GCS: %s", r)
	}
}

// septemberChanges makes the bank change two September 2026 transactions of the first
// user's first account: one deleted (its id is returned), one moved to 31 August.
func (f *fakeAkahu) septemberChanges(t *testing.T) (deleted string) {
	t.Helper()
	sep := f.srv.Settled(f.srv.AccountIDs(f.srv.Users()[0].ID)[0], nzDate(2026, 9, 1).Add(-1), nzDate(2026, 9, 30))
	if len(sep) < 3 {
		t.Fatal("population too small")
	}
	if err := f.srv.DeleteTransaction(sep[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.MoveDate(sep[1].ID, nzDate(2026, 8, 31)); err != nil {
		t.Fatal(err)
	}
	return sep[0].ID
}
