package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/akahu-etl/akahu-parquet/internal/faultproxy"
	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

// gcsFaults is the unreliable network of the GCS fault tests: 5% of requests
// answered 503, 3% applied by the server but their answer lost (connection
// closed: EOF), 2% connections reset before the server sees them, 5% answers
// delayed.
var gcsFaults = []faultproxy.Rule{
	{Kind: faultproxy.Unavailable, Rate: 0.05},
	{Kind: faultproxy.LostAnswer, Rate: 0.03},
	{Kind: faultproxy.Reset, Rate: 0.02},
	{Kind: faultproxy.Slow, Rate: 0.05},
}

// newFaultyGCS returns a bucket on an in-process fake-gcs-server reached through
// a fault-injecting proxy, and the proxy; refreshes counts the lock refreshes.
func newFaultyGCS(t testing.TB, seed uint64, rules []faultproxy.Rule, refreshes *atomic.Int64) (bucket.Bucket, *faultproxy.Proxy) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	p, err := faultproxy.New(faultproxy.Config{Target: srv.URL(), Seed: seed, Rules: rules, SlowDelay: 20 * time.Millisecond, Transport: lockRefreshes{http.DefaultTransport, refreshes}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(p.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}),
		storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "warehouse"})
	return gcs.NewWithClient(c, "warehouse", "akahu/v1", gcs.WithAttempts(8, 2*time.Millisecond, 50*time.Millisecond)), p
}

// TestRunSequenceGCSFaults runs a two-year backfill, an idempotent re-run and incremental
// runs with deletions, a replaced id and moves, on GCS through a network that
// fails requests in every way (503s, lost answers of applied writes, resets, slow
// answers), with a lock TTL short enough that the lock's heartbeat refreshes run
// through the faults too. Every run must commit, and after each the dataset must
// equal that of the same runs on a fault-free GCS; no deletion is recorded twice.
func TestRunSequenceGCSFaults(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	total := faultproxy.Stats{Faults: map[faultproxy.Kind]int64{}}
	runs := 0
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			var refreshes atomic.Int64
			fb, p := newFaultyGCS(t, seed, gcsFaults, &refreshes)
			n := runGCSFaultSequence(t, fb)
			if refreshes.Load() == 0 {
				t.Error("no lock refresh reached the server")
			}
			runs += n
			s := p.Stats()
			total.Requests += s.Requests
			total.Forwarded += s.Forwarded
			for k, v := range s.Faults {
				total.Faults[k] += v
			}
			t.Logf("seed %d: %d runs, all committed, %d lock refreshes; %v", seed, n, refreshes.Load(), s)
		})
	}
	t.Logf("GCS through faults: %d runs, all committed, each dataset equal to the fault-free run's; %v", runs, total)
	for _, k := range faultproxy.Kinds {
		if total.Faults[k] == 0 {
			t.Errorf("no %s injected: %v", k, total)
		}
	}
}

// runGCSFaultSequence drives the sequence on faulty and on a fault-free GCS and
// compares them after every run; it returns the number of runs on faulty.
func runGCSFaultSequence(t *testing.T, fb bucket.Bucket) int {
	opts := smallPopulation()
	opts.From = date(2024, 3, 1) // two years
	clean, faulty := newHarness(t, newGCS(t), opts), newHarness(t, fb, opts)
	hs := []*harness{clean, faulty}
	from, to := clean.opts.From, clean.opts.To
	jan, feb := date(2026, 1, 1), date(2026, 2, 1)
	runs := 0
	holdPastRefresh := map[string]bool{"backfill": true, "incremental with deletions and a move": true}
	// run runs [start, end] on both; the faulty run must commit without error.
	run := func(what string, start, end time.Time) [2]*pipeline.Manifest {
		t.Helper()
		var ms [2]*pipeline.Manifest
		for i, h := range hs {
			cfg := h.config(start, end)
			if h == faulty && holdPastRefresh[what] {
				// Refresh the lock every 5 s and hold the run past a refresh, so
				// that the refresh goes through the faults. (With 9 s, a refresh had
				// 3.75 s to get through 503s and slow answers, which a loaded
				// machine running -race sometimes missed.)
				cfg.LockTTL = 15 * time.Second
				var once sync.Once
				cfg.BeforeWrite = func(name string) {
					if strings.HasPrefix(name, "_inflight/") {
						once.Do(func() { time.Sleep(5500 * time.Millisecond) })
					}
				}
			}
			m, err := pipeline.Run(context.Background(), cfg)
			if err != nil || m == nil {
				t.Fatalf("%s on %s: committed %v, %v", what, []string{"fault-free GCS", "faulty GCS"}[i], m != nil, err)
			}
			ms[i] = m
		}
		runs++
		if ms[0].Counts != ms[1].Counts {
			t.Errorf("%s: counts %+v, fault-free %+v", what, ms[1].Counts, ms[0].Counts)
		}
		if want, got := contentOf(t, clean), contentOf(t, faulty); !reflect.DeepEqual(want, got) {
			t.Fatalf("%s: dataset differs from the fault-free run's (%d vs %d rows)", what, len(got), len(want))
		}
		if want, got := deletionsOf(t, clean.b), deletionsOf(t, faulty.b); !reflect.DeepEqual(want, got) {
			t.Fatalf("%s: deletions %v, fault-free %v", what, got, want)
		}
		return ms
	}

	run("backfill", from, to)
	faulty.expectFaithful(from, to)
	if ms := run("idempotent re-run", from, to); ms[1].Uploads.Objects != 0 || ms[1].Counts.Deleted != 0 {
		t.Errorf("idempotent re-run uploaded %d objects, deleted %d", ms[1].Uploads.Objects, ms[1].Counts.Deleted)
	}

	// Changes, the same on both fakes (same seed, same picks).
	var deleted, replaced, moved, outward string
	for _, h := range hs {
		_, janTx, febTx := h.pickAccount(jan, feb)
		deleted, replaced, moved, outward = febTx[0].ID, febTx[1].ID, janTx[0].ID, febTx[3].ID
		if err := h.srv.DeleteTransaction(deleted); err != nil {
			t.Fatal(err)
		}
		if _, err := h.srv.ReplaceID(replaced); err != nil {
			t.Fatal(err)
		}
		if err := h.srv.SetDescription(febTx[2].ID, "corrected"); err != nil {
			t.Fatal(err)
		}
		if err := h.srv.MoveDate(moved, date(2026, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if ms := run("incremental with deletions and a move", feb, to); ms[1].Counts.Deleted != 2 || ms[1].Counts.Moved != 1 {
		t.Errorf("incremental run counts %+v, want 2 deleted and 1 moved", ms[1].Counts)
	}
	faulty.expectFaithful(from, to)
	if ms := run("repeated incremental", feb, to); ms[1].Counts.Deleted != 0 || ms[1].Uploads.Objects != 0 {
		t.Errorf("repeated run counts %+v, uploads %+v", ms[1].Counts, ms[1].Uploads)
	}
	for _, h := range hs {
		if err := h.srv.MoveDate(outward, date(2026, 1, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if ms := run("incremental with a move out of the window", feb, to); ms[1].Counts.Moved != 1 || ms[1].Counts.Deleted != 0 {
		t.Errorf("outward move counts %+v", ms[1].Counts)
	}
	run("full range again", from, to)
	faulty.expectFaithful(from, to)

	// No deletion recorded twice: one tombstone and one manifest entry per id.
	expectTombstones(t, faulty.b, map[string]int{deleted: 1, replaced: 1})
	perID := map[string]int{}
	for _, m := range manifestsOf(t, faulty.b) {
		for _, d := range m.Deleted {
			perID[d.ID]++
		}
	}
	if want := map[string]int{deleted: 1, replaced: 1}; !reflect.DeepEqual(perID, want) {
		t.Errorf("deletions in manifests %v, want %v", perID, want)
	}
	if n := len(manifestsOf(t, faulty.b)); n != runs {
		t.Errorf("%d manifests for %d committed runs", n, runs)
	}
	for _, prefix := range []string{"_inflight/", "_locks/"} {
		if l, err := faulty.b.List(context.Background(), prefix); err != nil || len(l) != 0 {
			t.Errorf("left behind under %s: %v %v", prefix, l, err)
		}
	}
	return runs
}

// deletionsOf returns the ids in deletions/ with how many tombstones each has.
func deletionsOf(t *testing.T, b bucket.Bucket) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range readRows(t, b, "deletions/") {
		out[r.ID]++
	}
	return out
}

// manifestsOf decodes every manifest, in name order.
func manifestsOf(t *testing.T, b bucket.Bucket) []pipeline.Manifest {
	t.Helper()
	ctx := context.Background()
	list, err := b.List(ctx, "_manifests/")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	var out []pipeline.Manifest
	for _, a := range list {
		if !strings.HasSuffix(a.Name, ".json") {
			continue
		}
		data, _, err := b.Get(ctx, a.Name)
		if err != nil {
			t.Fatal(err)
		}
		var m pipeline.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		out = append(out, m)
	}
	return out
}

// lockRefreshes counts the lock refreshes (uploads of a lock object on a
// generation) that reached the server.
type lockRefreshes struct {
	http.RoundTripper
	n *atomic.Int64
}

func (l lockRefreshes) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	if r.Method == http.MethodPost && strings.Contains(q.Get("name"), "/_locks/") && q.Get("ifGenerationMatch") != "" && q.Get("ifGenerationMatch") != "0" {
		l.n.Add(1)
	}
	return l.RoundTripper.RoundTrip(r)
}
