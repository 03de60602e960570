package gcs_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/akahu-etl/akahu-parquet/internal/faultproxy"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket/buckettest"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

// proxied starts fake-gcs-server with a fault-injecting proxy in front of it
// and returns the emulator (to inspect what is really stored, bypassing the
// proxy), the proxy and a client that reaches the emulator through it.
func proxied(t *testing.T, seed uint64, rules ...faultproxy.Rule) (*fakestorage.Server, *faultproxy.Proxy, *storage.Client) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	p, err := faultproxy.New(faultproxy.Config{Target: srv.URL(), Seed: seed, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(p.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, p, c
}

// fastRetry keeps the tests' waits between attempts short.
var fastRetry = gcs.WithAttempts(6, time.Millisecond, 20*time.Millisecond)

// writeMethods are the requests that change objects: uploads and deletes.
var writeMethods = []string{http.MethodPost, http.MethodDelete}

// TestWriteSurvivesFault injects one fault into the first write request of
// each kind of write, and of a write whose every answer is lost: the write
// succeeds, exactly once, and reports the generation that is stored.
func TestWriteSurvivesFault(t *testing.T) {
	type op struct {
		name string
		// do writes "obj" (created by setup as "old" unless absent) and
		// returns the attributes it reports (zero for a delete).
		do     func(ctx context.Context, b bucket.Bucket, old bucket.Attrs) (bucket.Attrs, error)
		absent bool // "obj" does not exist before
		gone   bool // "obj" does not exist after
	}
	ops := []op{
		{"Put if-not-exists", func(ctx context.Context, b bucket.Bucket, _ bucket.Attrs) (bucket.Attrs, error) {
			return b.Put(ctx, "obj", []byte("new"), bucket.Condition{DoesNotExist: true})
		}, true, false},
		{"Put if-generation", func(ctx context.Context, b bucket.Bucket, old bucket.Attrs) (bucket.Attrs, error) {
			return b.Put(ctx, "obj", []byte("new"), bucket.Condition{GenerationMatch: old.Generation})
		}, false, false},
		{"Put unconditional", func(ctx context.Context, b bucket.Bucket, _ bucket.Attrs) (bucket.Attrs, error) {
			return b.Put(ctx, "obj", []byte("new"), bucket.Condition{})
		}, false, false},
		{"Delete if-generation", func(ctx context.Context, b bucket.Bucket, old bucket.Attrs) (bucket.Attrs, error) {
			return bucket.Attrs{}, b.Delete(ctx, "obj", bucket.Condition{GenerationMatch: old.Generation})
		}, false, true},
		{"Delete unconditional", func(ctx context.Context, b bucket.Bucket, _ bucket.Attrs) (bucket.Attrs, error) {
			return bucket.Attrs{}, b.Delete(ctx, "obj", bucket.Condition{})
		}, false, true},
	}
	faults := []struct {
		name string
		rule faultproxy.Rule
		lost bool
	}{
		{"first answer lost", faultproxy.Rule{Kind: faultproxy.LostAnswer, Rate: 1, Methods: writeMethods, Limit: 1}, true},
		{"two answers lost", faultproxy.Rule{Kind: faultproxy.LostAnswer, Rate: 1, Methods: writeMethods, Limit: 2}, true},
		{"every answer lost", faultproxy.Rule{Kind: faultproxy.LostAnswer, Rate: 1, Methods: writeMethods}, true},
		{"first connection reset", faultproxy.Rule{Kind: faultproxy.Reset, Rate: 1, Methods: writeMethods, Limit: 1}, false},
		{"first answer 503", faultproxy.Rule{Kind: faultproxy.Unavailable, Rate: 1, Methods: writeMethods, Limit: 1}, false},
	}
	for _, o := range ops {
		for _, f := range faults {
			t.Run(o.name+"/"+f.name, func(t *testing.T) {
				srv, p, c := proxied(t, 1)
				bn := newBucketName()
				srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
				b := gcs.NewWithClient(c, bn, "p", fastRetry)
				ctx := context.Background()
				var old bucket.Attrs
				if !o.absent {
					var err error
					if old, err = b.Put(ctx, "obj", []byte("old"), bucket.Condition{DoesNotExist: true}); err != nil {
						t.Fatal(err)
					}
				}
				p.SetRules([]faultproxy.Rule{f.rule})
				got, err := o.do(ctx, b, old)
				p.SetRules(nil)
				if err != nil {
					t.Fatalf("error %v after %v, want success", err, p.Stats())
				}
				if n := p.Stats().Faults[f.rule.Kind]; n == 0 {
					t.Fatalf("no fault injected: %v", p.Stats())
				}
				stored, serr := srv.GetObject(bn, "p/obj")
				if o.gone {
					if serr == nil {
						t.Errorf("object still stored (generation %d)", stored.Generation)
					}
					return
				}
				if serr != nil || string(stored.Content) != "new" {
					t.Fatalf("stored %q (%v), want the new bytes", stored.Content, serr)
				}
				if got.Generation != stored.Generation || got.Size != 3 || got.CRC32C != bucket.CRC32C([]byte("new")) || got.Generation <= old.Generation {
					t.Errorf("Put reported %+v, stored generation %d (old %d)", got, stored.Generation, old.Generation)
				}
			})
		}
	}
}

// TestAcceptanceThroughFaults runs the acceptance suite through a network
// that fails requests in every way the proxy can: the contract holds.
func TestAcceptanceThroughFaults(t *testing.T) {
	rules := []faultproxy.Rule{
		{Kind: faultproxy.Unavailable, Rate: 0.05},
		{Kind: faultproxy.LostAnswer, Rate: 0.03},
		{Kind: faultproxy.Reset, Rate: 0.02},
		{Kind: faultproxy.Slow, Rate: 0.05},
	}
	total := faultproxy.Stats{Faults: map[faultproxy.Kind]int64{}}
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			srv, p, c := proxied(t, seed, rules...)
			buckettest.Run(t, func(t *testing.T) bucket.Bucket {
				name := newBucketName()
				srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
				return gcs.NewWithClient(c, name, "faulty", fastRetry)
			})
			s := p.Stats()
			total.Requests += s.Requests
			total.Forwarded += s.Forwarded
			for k, n := range s.Faults {
				total.Faults[k] += n
			}
		})
	}
	t.Logf("acceptance suite through faults, 3 seeds: %v", total)
	for _, k := range faultproxy.Kinds {
		if total.Faults[k] == 0 {
			t.Errorf("no %s injected: %v", k, total)
		}
	}
}

// TestGivesUp: a Bucket whose requests all fail reports ErrTransient after
// its attempts, naming the object, and leaves the object as it was; while
// waiting to retry it honours the caller's context.
func TestGivesUp(t *testing.T) {
	srv, p, c := proxied(t, 1)
	bn := newBucketName()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bn})
	b := gcs.NewWithClient(c, bn, "", gcs.WithAttempts(3, time.Millisecond, time.Millisecond))
	ctx := context.Background()
	old, err := b.Put(ctx, "obj", []byte("old"), bucket.Condition{DoesNotExist: true})
	if err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		do   func(ctx context.Context, b bucket.Bucket) error
	}{
		{"Get", func(ctx context.Context, b bucket.Bucket) error { _, _, err := b.Get(ctx, "obj"); return err }},
		{"Attrs", func(ctx context.Context, b bucket.Bucket) error { _, err := b.Attrs(ctx, "obj"); return err }},
		{"List", func(ctx context.Context, b bucket.Bucket) error { _, err := b.List(ctx, ""); return err }},
		{"Put", func(ctx context.Context, b bucket.Bucket) error {
			_, err := b.Put(ctx, "obj", []byte("new"), bucket.Condition{GenerationMatch: old.Generation})
			return err
		}},
		{"Put new", func(ctx context.Context, b bucket.Bucket) error {
			_, err := b.Put(ctx, "other", []byte("new"), bucket.Condition{DoesNotExist: true})
			return err
		}},
		{"Delete", func(ctx context.Context, b bucket.Bucket) error { return b.Delete(ctx, "obj", bucket.Condition{}) }},
	}
	for _, kind := range []faultproxy.Kind{faultproxy.Reset, faultproxy.Unavailable} {
		for _, op := range ops {
			t.Run(kind.String()+"/"+op.name, func(t *testing.T) {
				// Reads fail too for reads; for writes only the writes fail,
				// so that reading back can tell the write did not happen.
				rule := faultproxy.Rule{Kind: kind, Rate: 1}
				if op.name == "Put" || op.name == "Put new" || op.name == "Delete" {
					rule.Methods = writeMethods
				}
				p.SetRules([]faultproxy.Rule{rule})
				before := p.Stats().Requests
				err := op.do(ctx, b)
				p.SetRules(nil)
				if !bucket.IsTransient(err) || !strings.Contains(err.Error(), "gs://"+bn) {
					t.Fatalf("error %v, want ErrTransient naming the bucket", err)
				}
				if n := p.Stats().Requests - before; n > 12 {
					t.Errorf("%d requests for 3 attempts", n)
				}
				got, a, err := b.Get(ctx, "obj")
				if err != nil || string(got) != "old" || a.Generation != old.Generation {
					t.Errorf("after the failed %s: %q gen %d, %v; want the old object", op.name, got, a.Generation, err)
				}
				if _, err := b.Attrs(ctx, "other"); !bucket.IsNotFound(err) {
					t.Errorf("after the failed %s: \"other\" exists (%v)", op.name, err)
				}
			})
		}
	}
	t.Run("context ends while waiting", func(t *testing.T) {
		slow := gcs.NewWithClient(c, bn, "", gcs.WithAttempts(100, time.Hour, time.Hour))
		p.SetRules([]faultproxy.Rule{{Kind: faultproxy.Unavailable, Rate: 1}})
		defer p.SetRules(nil)
		for _, op := range ops {
			// Long enough for the first attempt's 503 to come back on a loaded machine
			// (with 100 ms, a slow first answer left only the deadline to report); the
			// hour-long backoff after it is what the deadline must cut short.
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			err := op.do(cctx, slow)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
				t.Errorf("%s: error %v, want the context's deadline and the last failure", op.name, err)
			}
		}
	})
}
