package gcs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket/buckettest"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

// emulator starts fake-gcs-server in process, listening on loopback over
// plain HTTP, and returns it with a storage client pointed at its endpoint
// (a real HTTP round trip, as the production client makes). rt, if not nil,
// wraps the client's transport.
func emulator(t testing.TB, rt func(http.RoundTripper) http.RoundTripper) (*fakestorage.Server, *storage.Client) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		NoListener: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	var tr http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if rt != nil {
		tr = rt(tr)
	}
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: tr}),
		// The emulator mishandles XML API reads of names with a slash
		// (GET /bucket/a%2Fb is a 404); read through the JSON API instead.
		storage.WithJSONReads(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

var bucketSeq atomic.Int64

func newBucketName() string { return fmt.Sprintf("test-bucket-%d", bucketSeq.Add(1)) }

func TestAcceptance(t *testing.T) {
	srv, c := emulator(t, nil)
	for _, prefix := range []string{"", "warehouse/v1"} {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) {
			buckettest.Run(t, func(t *testing.T) bucket.Bucket {
				name := newBucketName()
				srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
				return gcs.NewWithClient(c, name, prefix)
			})
		})
	}
}

// TestEmulatorHonoursUploadPreconditions checks the emulator itself, with
// the raw client: versions before 1.55.1 ignored ifGenerationMatch on
// uploads, which would make every conflict test above meaningless.
func TestEmulatorHonoursUploadPreconditions(t *testing.T) {
	srv, c := emulator(t, nil)
	name := newBucketName()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	ctx := context.Background()
	obj := c.Bucket(name).Object("o")
	write := func(cond storage.Conditions, data string) (*storage.ObjectAttrs, error) {
		w := obj.If(cond).NewWriter(ctx)
		w.ChunkSize = 1 << 20
		if _, err := io.WriteString(w, data); err != nil {
			return nil, err
		}
		err := w.Close()
		return w.Attrs(), err
	}
	a1, err := write(storage.Conditions{DoesNotExist: true}, "one")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		what string
		cond storage.Conditions
	}{
		{"DoesNotExist on an existing object", storage.Conditions{DoesNotExist: true}},
		{"stale GenerationMatch", storage.Conditions{GenerationMatch: a1.Generation - 1}},
	}
	for _, tc := range tests {
		if _, err := write(tc.cond, "two"); err == nil || !strings.Contains(err.Error(), "412") {
			t.Errorf("%s: error = %v, want HTTP 412", tc.what, err)
		}
	}
	a2, err := write(storage.Conditions{GenerationMatch: a1.Generation}, "three")
	if err != nil || a2.Generation <= a1.Generation {
		t.Fatalf("matching GenerationMatch: attrs %+v, err %v", a2, err)
	}
}

// TestConflictIsNotEarlierSuccess: a Put whose condition fails is a conflict
// even when the object holds the same bytes (another writer's, or an earlier
// Put's): only a Put's own write, recognised by its write id, counts as its
// success (TestWriteSurvivesFault covers that case).
func TestConflictIsNotEarlierSuccess(t *testing.T) {
	srv, c := emulator(t, nil)
	bn := newBucketName()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
	b := gcs.NewWithClient(c, bn, "p")
	ctx := context.Background()
	data := []byte("PAR1 the bytes of the first attempt PAR1")
	first, err := b.Put(ctx, "t/part-000.parquet", data, bucket.Condition{DoesNotExist: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		what string
		data []byte
		cond bucket.Condition
	}{
		{"same bytes, stale generation", data, bucket.Condition{GenerationMatch: first.Generation - 1}},
		{"same bytes, DoesNotExist", data, bucket.Condition{DoesNotExist: true}},
		{"different bytes, stale generation", []byte("PAR1 other PAR1"), bucket.Condition{GenerationMatch: first.Generation - 1}},
		{"different bytes, DoesNotExist", []byte("PAR1 other PAR1"), bucket.Condition{DoesNotExist: true}},
		{"same size, different bytes", bytes.ToUpper(data), bucket.Condition{DoesNotExist: true}},
	}
	for _, tc := range tests {
		a, err := b.Put(ctx, "t/part-000.parquet", tc.data, tc.cond)
		if !bucket.IsConflict(err) {
			t.Errorf("%s: attrs %+v, error %v; want ErrConflict", tc.what, a, err)
		} else if !strings.Contains(err.Error(), fmt.Sprint(first.Generation)) || !strings.Contains(err.Error(), "t/part-000.parquet") {
			t.Errorf("%s: error %q does not name the object and current generation %d", tc.what, err, first.Generation)
		}
	}
	got, a, err := b.Get(ctx, "t/part-000.parquet")
	if err != nil || !bytes.Equal(got, data) || a.Generation != first.Generation {
		t.Errorf("after all: Get = %q gen %d, %v; want the first bytes, gen %d", got, a.Generation, err, first.Generation)
	}
}

// recorder records the upload requests a client makes.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.Contains(req.URL.Path, "/upload/") {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.RawQuery+" crc32c-in-body="+fmt.Sprint(bytes.Contains(body, []byte(`"crc32c"`))))
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// TestPutIsOneConditionalRequestWithCRC checks the wire: every upload,
// including an unconditional Put's, is a single multipart request that
// carries a generation precondition and the CRC32C.
func TestPutIsOneConditionalRequestWithCRC(t *testing.T) {
	rec := &recorder{}
	srv, c := emulator(t, func(next http.RoundTripper) http.RoundTripper { rec.next = next; return rec })
	bn := newBucketName()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
	b := gcs.NewWithClient(c, bn, "")
	ctx := context.Background()
	sizes := []int{0, 100 << 10, 256 << 10, 3<<20 + 1}
	for _, size := range sizes {
		rec.reqs = nil
		data := bytes.Repeat([]byte{'x'}, size)
		a1, err := b.Put(ctx, "obj", data, bucket.Condition{}) // creates or replaces: unconditional
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, "obj", data, bucket.Condition{GenerationMatch: a1.Generation}); err != nil {
			t.Fatal(err)
		}
		if len(rec.reqs) != 2 {
			t.Fatalf("size %d: %d upload requests %q, want 2 (one per Put)", size, len(rec.reqs), rec.reqs)
		}
		for _, r := range rec.reqs {
			if !strings.Contains(r, "uploadType=multipart") || !strings.Contains(r, "ifGenerationMatch=") || !strings.Contains(r, "crc32c-in-body=true") {
				t.Errorf("size %d: upload request %q, want a multipart upload with ifGenerationMatch and crc32c", size, r)
			}
		}
	}
}

// errorServer answers every request with status and a JSON API error body,
// counting requests.
func errorServer(t *testing.T, status int) (*storage.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"%s","errors":[{"message":"%s","domain":"global","reason":"x"}]}}`,
			status, http.StatusText(status), http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, &n
}

func TestErrorClasses(t *testing.T) {
	fast := []gcs.Option{gcs.WithAttempts(3, time.Millisecond, 2*time.Millisecond)}
	tests := []struct {
		status    int
		class     error
		retried   bool
		className string
	}{
		{http.StatusForbidden, bucket.ErrPermission, false, "ErrPermission"},
		{http.StatusUnauthorized, bucket.ErrPermission, false, "ErrPermission"},
		{http.StatusServiceUnavailable, bucket.ErrTransient, true, "ErrTransient"},
		{http.StatusTooManyRequests, bucket.ErrTransient, true, "ErrTransient"},
		{http.StatusPreconditionFailed, bucket.ErrConflict, false, "ErrConflict"},
		{http.StatusNotFound, bucket.ErrNotFound, false, "ErrNotFound"},
	}
	ops := []struct {
		name string
		do   func(b *gcs.Bucket) error
	}{
		{"Attrs", func(b *gcs.Bucket) error { _, err := b.Attrs(context.Background(), "x/y.parquet"); return err }},
		{"Get", func(b *gcs.Bucket) error { _, _, err := b.Get(context.Background(), "x/y.parquet"); return err }},
		{"Put", func(b *gcs.Bucket) error {
			_, err := b.Put(context.Background(), "x/y.parquet", []byte("data"), bucket.Condition{DoesNotExist: true})
			return err
		}},
		{"Delete", func(b *gcs.Bucket) error { return b.Delete(context.Background(), "x/y.parquet", bucket.Condition{}) }},
		{"List", func(b *gcs.Bucket) error { _, err := b.List(context.Background(), "x/"); return err }},
	}
	for _, tc := range tests {
		for _, op := range ops {
			if tc.status == http.StatusPreconditionFailed && op.name != "Put" && op.name != "Delete" {
				continue
			}
			t.Run(fmt.Sprintf("%d/%s", tc.status, op.name), func(t *testing.T) {
				c, n := errorServer(t, tc.status)
				b := gcs.NewWithClient(c, "secret-free-bucket", "pre", fast...)
				err := op.do(b)
				if !errorsIs(err, tc.class) {
					t.Fatalf("error = %v, want %s", err, tc.className)
				}
				if op.name != "List" && !strings.Contains(err.Error(), "x/y.parquet") {
					t.Errorf("error %q does not name the object", err)
				}
				if !strings.Contains(err.Error(), "gs://secret-free-bucket/pre") {
					t.Errorf("error %q does not name the bucket", err)
				}
				if got := n.Load(); tc.retried && got < 3 {
					t.Errorf("%d requests, want the client to have retried", got)
				}
			})
		}
	}
}

func errorsIs(err, target error) bool {
	for _, c := range []error{bucket.ErrNotFound, bucket.ErrConflict, bucket.ErrPermission, bucket.ErrTransient} {
		if c != target && isClass(err, c) {
			return false // exactly one class
		}
	}
	return isClass(err, target)
}

func isClass(err, class error) bool {
	switch class {
	case bucket.ErrNotFound:
		return bucket.IsNotFound(err)
	case bucket.ErrConflict:
		return bucket.IsConflict(err)
	case bucket.ErrPermission:
		return bucket.IsPermission(err)
	case bucket.ErrTransient:
		return bucket.IsTransient(err)
	}
	return false
}

func TestPrefixIsolation(t *testing.T) {
	srv, c := emulator(t, nil)
	bn := newBucketName()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
	ctx := context.Background()
	for _, raw := range []string{"warehouse/v1x/a", "warehouse/v1", "other/a", "a"} {
		w := c.Bucket(bn).Object(raw).NewWriter(ctx)
		w.Write([]byte(raw))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b := gcs.NewWithClient(c, bn, "/warehouse/v1/")
	if got := b.String(); got != "gs://"+bn+"/warehouse/v1" {
		t.Errorf("String() = %q", got)
	}
	if _, err := b.Put(ctx, "a", []byte("mine"), bucket.Condition{DoesNotExist: true}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Bucket(bn).Object("warehouse/v1/a").NewReader(ctx)
	if err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}
	raw, _ := io.ReadAll(r)
	r.Close()
	if string(raw) != "mine" {
		t.Errorf("warehouse/v1/a = %q", raw)
	}
	l, err := b.List(ctx, "")
	if err != nil || len(l) != 1 || l[0].Name != "a" {
		t.Errorf("List = %+v, %v; want only \"a\"", l, err)
	}
	if _, err := b.Attrs(ctx, "v1x/a"); !bucket.IsNotFound(err) {
		t.Errorf("escaped the prefix: %v", err)
	}
}

// TestNewHonoursEmulatorHost checks that New leaves STORAGE_EMULATOR_HOST to
// the official client (no credentials needed, requests go to the emulator).
func TestNewHonoursEmulatorHost(t *testing.T) {
	srv, _ := emulator(t, nil)
	bn := newBucketName()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	ctx := context.Background()
	b, err := gcs.New(ctx, bn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := b.Put(ctx, "_dataset.json", []byte(`{"layout":1}`), bucket.Condition{DoesNotExist: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.GetObject(bn, "_dataset.json")
	if err != nil || string(got.Content) != `{"layout":1}` || got.Generation != a.Generation {
		t.Errorf("emulator holds %q gen %d (%v); want our bytes, gen %d", got.Content, got.Generation, err, a.Generation)
	}
}
