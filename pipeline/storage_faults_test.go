package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

// Which storage-fault tests need root: the "tmpfs" variants mount a real tmpfs
// (2 MB, filled up; or remounted read-only) and skip without root. The "injected"
// variants run everywhere, unprivileged: the real Local bucket on a temp directory
// with its SetFault seam making the real file operations fail with ENOSPC or EROFS
// (as *os.PathError), exactly where a full or read-only file system fails them.

// tmpfs mounts a small tmpfs (a real file system that fills up) or skips.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("this variant needs root (it mounts a %s tmpfs): %v: %s; the injected variants cover the same failure unprivileged", size, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// changeSome makes the next run rewrite partitions: one transaction changes, one is
// deleted at Akahu (returned) and one is added, all in February.
func changeSome(t *testing.T, h *harness) (deleted string) {
	t.Helper()
	acct, _, feb := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))
	if err := h.srv.SetDescription(feb[0].ID, "changed while the disk was full"); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.DeleteTransaction(feb[1].ID); err != nil {
		t.Fatal(err)
	}
	h.srv.AddTransaction(acct, date(2026, 2, 20), "-9.99", "new")
	return feb[1].ID
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

// storageFault is one way the storage fails a run, and how it comes back.
type storageFault struct {
	fail    func()           // makes the storage fail from now on
	restore func()           // makes it work again
	cause   string           // what the error must say ("no space left on device")
	object  func() string    // the object (or prefix) the error must name
	class   error            // the bucket error class, if any
	intact  bool             // the failure hits before any data object is written
	extra   func(*testing.T) // further checks on the failed run's leftovers
}

// testStorageFault runs a backfill, changes Akahu, fails the next run with the
// fault, and checks: a clear error naming the object and the cause; nothing
// committed; no data lost (every data object unchanged when the fault hit before the
// first data write); no temp file left. With the storage back, the next run succeeds,
// the dataset is faithful and verifies clean, and the deletion is recorded exactly
// once, in deletions/ and in the committed manifests.
func testStorageFault(t *testing.T, b *bucket.Local, f storageFault) {
	ctx := context.Background()
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	before := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/")
	rowsBefore := byID(t, readRows(t, b, "transactions/"))
	manifestsBefore := len(mustList(t, b, "_manifests/"))
	deleted := changeSome(t, h)

	f.fail()
	m, err := pipeline.Run(ctx, h.config(from, to))
	f.restore()
	if err == nil || m != nil {
		t.Fatalf("run on failing storage: err %v, manifest %v", err, m != nil)
	}
	t.Logf("failed run: %v", err)
	msg := err.Error()
	if obj := f.object(); !strings.Contains(msg, f.cause) || !strings.Contains(msg, obj) {
		t.Errorf("error does not say %q naming %s: %v", f.cause, obj, err)
	}
	if f.class != nil && !errors.Is(err, f.class) {
		t.Errorf("error is not %v: %v", f.class, err)
	}
	if n := len(mustList(t, b, "_manifests/")); n != manifestsBefore {
		t.Errorf("%d manifests after the failed run, %d before: it committed", n, manifestsBefore)
	}
	if f.intact {
		expectIntact(t, b, before)
	}
	// No data lost: every row is still in transactions/ with its values, except the
	// one Akahu changed (present, either version) and the one it deleted (present, or
	// in a tombstone of the failed run).
	rowsAfter := byID(t, readRows(t, b, "transactions/"))
	tombs := byID(t, readRows(t, b, "deletions/"))
	for id, r := range rowsBefore {
		a, ok := rowsAfter[id]
		switch {
		case id == deleted:
			if _, inTomb := tombs[id]; !ok && !inTomb {
				t.Errorf("deleted %s is neither in transactions/ nor in a tombstone", id)
			}
		case !ok:
			t.Errorf("failed run lost %s (%s)", id, r.Object)
		case a.Description != r.Description && a.Description != "changed while the disk was full",
			a.Amount != r.Amount, !a.Date.Equal(r.Date), a.Object != r.Object:
			t.Errorf("failed run changed %s: %+v, was %+v", id, a, r)
		}
	}
	if tmp, err := b.TempFiles(ctx); err != nil || len(tmp) != 0 {
		t.Errorf("failed run left temp files %q (%v)", tmp, err)
	}
	if f.extra != nil {
		f.extra(t)
	}

	// The storage works again: the next run completes and the dataset is faithful.
	h.run(from, to)
	h.expectFaithful(from, to)
	expectTombstones(t, b, map[string]int{deleted: 1})
	n := 0
	for _, a := range mustList(t, b, "_manifests/") {
		data, _, err := b.Get(ctx, a.Name)
		if err != nil {
			t.Fatal(err)
		}
		var mf pipeline.Manifest
		if err := json.Unmarshal(data, &mf); err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		for _, d := range mf.Deleted {
			if d.ID == deleted {
				n++
			} else {
				t.Errorf("%s records a deletion of %s, which Akahu still has", a.Name, d.ID)
			}
		}
	}
	if n != 1 {
		t.Errorf("deletion of %s recorded in %d committed manifests, want 1", deleted, n)
	}
	rep, err := pipeline.Verify(ctx, b)
	if err != nil || !rep.OK() {
		t.Errorf("dataset after recovery: %v %+v", err, rep)
	}
}

// fullDisk stands in for a file system that fills up: from the first write of an
// object under fillAt ("" for the very first write) every file write stores half its
// bytes and fails with ENOSPC, until it is emptied. Like a full tmpfs, it still
// creates, renames and removes files.
type fullDisk struct {
	root, fillAt string
	mu           sync.Mutex
	full         bool
	filledBy     string // the object whose write found the disk full first
}

func (d *fullDisk) fault(op, path string, n int) (int, syscall.Errno) {
	if op != "write" {
		return 0, 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.full {
		// path is the temp file <dir>/.<base>.tmp-<random> of object <dir>/<base>.
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			panic(err)
		}
		dir, base := filepath.Split(filepath.ToSlash(rel))
		name := dir + strings.TrimPrefix(base[:strings.LastIndex(base, ".tmp-")], ".")
		if !strings.HasPrefix(name, d.fillAt) {
			return 0, 0
		}
		d.full, d.filledBy = true, name
	}
	return n / 2, syscall.ENOSPC
}

func (d *fullDisk) object() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.filledBy
}

func TestDiskFull(t *testing.T) {
	t.Log("variant tmpfs needs root (mounts a 2 MB tmpfs and fills it); the injected variants run unprivileged")
	t.Run("tmpfs", func(t *testing.T) {
		dir := tmpfs(t, "2m")
		b, err := bucket.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		filler := filepath.Join(dir, "filler")
		testStorageFault(t, b, storageFault{
			fail: func() {
				f, err := os.Create(filler)
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
			},
			restore: func() {
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			},
			cause: "no space left on device",
			// The run stops at its first write: the lock object.
			object: func() string { return "_locks/" },
			intact: true,
		})
	})
	// The disk fills at the first write of an object under the prefix. With the
	// changes of changeSome the run writes, in order: its lock, its in-flight
	// marker, a tombstone, the February partition without the deleted row, the
	// manifest.
	for _, tc := range []struct {
		name, fillAt string
		intact       bool // no data object written before the disk filled
	}{
		{"full from the start", "", true},
		{"full while writing a tombstone", "deletions/", true},
		{"full while writing a partition", "transactions/", false},
		{"full while writing the manifest", "_manifests/", false},
	} {
		t.Run("injected/"+tc.name, func(t *testing.T) {
			b, err := bucket.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			d := &fullDisk{root: b.Dir(), fillAt: tc.fillAt}
			testStorageFault(t, b, storageFault{
				fail:    func() { b.SetFault(d.fault) },
				restore: func() { b.SetFault(nil) },
				cause:   "no space left on device",
				object:  d.object,
				intact:  tc.intact,
				extra: func(t *testing.T) {
					if obj := d.object(); !strings.HasPrefix(obj, tc.fillAt) {
						t.Errorf("the disk filled writing %q, not an object under %q", obj, tc.fillAt)
					}
				},
			})
		})
	}
}

func TestReadOnlyDirectory(t *testing.T) {
	t.Log("variant tmpfs needs root (mounts a tmpfs and remounts it read-only); the injected variant runs unprivileged")
	readOnly := storageFault{
		cause:  "read-only file system",
		object: func() string { return "_locks/" }, // the first write of a run
		class:  bucket.ErrPermission,               // retrying does not help
		intact: true,
	}
	t.Run("tmpfs", func(t *testing.T) {
		dir := tmpfs(t, "8m")
		b, err := bucket.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		f := readOnly
		f.fail = func() {
			if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
				t.Skipf("this variant needs root (remount read-only): %v %s", err, out)
			}
		}
		f.restore = func() {
			if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
				t.Fatalf("remount read-write: %v %s", err, out)
			}
		}
		testStorageFault(t, b, f)
	})
	t.Run("injected", func(t *testing.T) {
		b, err := bucket.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f := readOnly
		f.fail = func() {
			b.SetFault(func(op, path string, n int) (int, syscall.Errno) { return 0, syscall.EROFS })
		}
		f.restore = func() { b.SetFault(nil) }
		testStorageFault(t, b, f)
	})
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
