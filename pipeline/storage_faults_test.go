package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

// tmpfs mounts a small tmpfs (a real file system that fills up) or skips.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): storage-full test needs root", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// changeSome makes the next run rewrite partitions.
func changeSome(t *testing.T, h *harness) {
	t.Helper()
	acct, _, feb := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))
	if err := h.srv.SetDescription(feb[0].ID, "changed while the disk was full"); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.DeleteTransaction(feb[1].ID); err != nil {
		t.Fatal(err)
	}
	h.srv.AddTransaction(acct, date(2026, 2, 20), "-9.99", "new")
}

// expectIntact checks that a failed run left every data object as it was.
func expectIntact(t *testing.T, b bucket.Bucket, before map[string]string) {
	t.Helper()
	after := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/")
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("failed run changed %s", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok && !strings.HasPrefix(name, "deletions/") {
			t.Errorf("failed run left a new object %s", name)
		}
	}
}

func TestDiskFull(t *testing.T) {
	dir := tmpfs(t, "2m")
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	before := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/")
	changeSome(t, h)
	// Fill the file system.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	if err == nil || m != nil {
		t.Fatalf("run on a full disk: err %v, manifest %v", err, m != nil)
	}
	msg := err.Error()
	if !strings.Contains(msg, "no space left on device") || !(strings.Contains(msg, ".parquet") || strings.Contains(msg, ".json")) {
		t.Errorf("error does not say the disk is full and which object: %v", err)
	}
	expectIntact(t, b, before)
	if rep, _ := pipeline.Verify(context.Background(), b); rep != nil {
		for _, p := range rep.Problems {
			if strings.Contains(p, "temp file") {
				t.Errorf("full disk left a temp file: %s", p)
			}
		}
	}
	// Room again: the next run completes and the dataset is faithful.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	h.run(from, to)
	h.expectFaithful(from, to)
}

func TestReadOnlyDirectory(t *testing.T) {
	dir := tmpfs(t, "8m")
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	before := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/")
	changeSome(t, h)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Skipf("remount read-only: %v %s", err, out)
	}
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	if err == nil || m != nil {
		t.Fatalf("run on a read-only directory: err %v", err)
	}
	if !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), "_locks/") {
		t.Errorf("error does not name the object and the cause: %v", err)
	}
	expectIntact(t, b, before)
}

// TestGCSPermissionDenied: an upload refused with 403 fails the run with a
// permission error naming the object; nothing is lost.
func TestGCSPermissionDenied(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	var deny bool
	tr := roundTrip(func(r *http.Request) (*http.Response, error) {
		if deny && r.Method != http.MethodGet {
			body := `{"error":{"code":403,"message":"caller does not have storage.objects.create access"}}`
			return &http.Response{StatusCode: 403, Header: http.Header{"Content-Type": {"application/json"}},
				Body: http.NoBody, Request: r, ContentLength: int64(len(body))}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: tr}), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "denied"})
	b := gcs.NewWithClient(c, "denied", "p")
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	before := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/")
	changeSome(t, h)
	deny = true
	m, err := pipeline.Run(context.Background(), h.config(from, to))
	deny = false
	if err == nil || m != nil || !errors.Is(err, bucket.ErrPermission) {
		t.Fatalf("run without write permission: err %v", err)
	}
	if !strings.Contains(err.Error(), "_locks/") {
		t.Errorf("error does not name the object: %v", err)
	}
	expectIntact(t, b, before)
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestConflictingWriter: a writer that ignores the lock changes a partition between
// the run's read and its write; the conditional write fails cleanly, naming the
// object, and the other writer's bytes survive.
func TestConflictingWriter(t *testing.T) {
	dir := t.TempDir()
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	changeSome(t, h)
	target := "transactions/month=2026-02/part-000.parquet"
	foreign := []byte("bytes of a writer that ignored the lock")
	cfg := h.config(from, to)
	cfg.BeforeWrite = func(name string) {
		if name == target {
			if _, err := other.Put(context.Background(), target, foreign, bucket.Condition{}); err != nil {
				t.Error(err)
			}
		}
	}
	m, err := pipeline.Run(context.Background(), cfg)
	if err == nil || m != nil || !errors.Is(err, bucket.ErrConflict) {
		t.Fatalf("run racing a foreign writer: err %v", err)
	}
	if !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "another writer") {
		t.Errorf("error does not name the object and the conflict: %v", err)
	}
	got, _, err := b.Get(context.Background(), target)
	if err != nil || string(got) != string(foreign) {
		t.Errorf("the other writer's bytes were overwritten: %q %v", got, err)
	}
	list, _ := b.List(context.Background(), "_manifests/")
	if len(list) != 1 {
		t.Errorf("%d manifests: the failed run committed", len(list))
	}
	_ = fmt.Sprint()
}
