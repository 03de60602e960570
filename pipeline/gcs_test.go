package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/gcs"
)

var gcsSeq atomic.Int64

// newGCS returns a bucket on an in-process fake-gcs-server reached over loopback HTTP,
// as the production client reaches GCS.
func newGCS(t *testing.T) bucket.Bucket {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}),
		storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	name := fmt.Sprintf("warehouse-%d", gcsSeq.Add(1))
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return gcs.NewWithClient(c, name, "akahu/v1")
}

// TestRunSequenceGCS runs the whole scripted sequence with GCS output.
func TestRunSequenceGCS(t *testing.T) {
	testRunSequence(t, newGCS(t), 0)
}

// TestGCSMatchesLocal: the same runs give the same rows, tombstones and manifest
// counts on GCS as on local disk.
func TestGCSMatchesLocal(t *testing.T) {
	local, remote := newHarness(t, newLocal(t), smallPopulation()), newHarness(t, newGCS(t), smallPopulation())
	for _, h := range []*harness{local, remote} {
		from, to := h.opts.From, h.opts.To
		h.run(from, to)
		febW := h.srv.Settled(h.srv.AccountIDs(h.srv.Users()[0].ID)[0], date(2026, 2, 1).Add(-time.Millisecond), to)
		if len(febW) < 2 {
			t.Fatal("population too small")
		}
		_ = h.srv.DeleteTransaction(febW[0].ID)
		_ = h.srv.MoveDate(febW[1].ID, date(2026, 1, 15))
	}
	ml, mr := local.run(date(2026, 2, 1), local.opts.To), remote.run(date(2026, 2, 1), remote.opts.To)
	if ml.Counts != mr.Counts {
		t.Errorf("counts local %+v, GCS %+v", ml.Counts, mr.Counts)
	}
	if len(ml.Objects) != len(mr.Objects) {
		t.Errorf("objects local %d, GCS %d", len(ml.Objects), len(mr.Objects))
	}
	// Bytes differ only by lineage (_run_id, _extracted_at) and tombstone names by run id.
	norm := func(p, run string) string { return strings.ReplaceAll(p, run, "<run>") }
	for i := range ml.Objects {
		l := ml.Objects[i]
		if i >= len(mr.Objects) {
			break
		}
		r := mr.Objects[i]
		if norm(l.Path, ml.RunID) != norm(r.Path, mr.RunID) || l.Kind != r.Kind || l.Op != r.Op || l.Rows != r.Rows {
			t.Errorf("object %d: local %+v, GCS %+v", i, l, r)
		}
		if i < len(mr.Objects) && mr.Objects[i].Op == "put" && mr.Objects[i].Generation == 0 {
			t.Errorf("GCS object %s: no generation recorded", mr.Objects[i].Path)
		}
	}
	cl, cr := contentOf(t, local), contentOf(t, remote)
	if len(cl) != len(cr) {
		t.Fatalf("rows local %d, GCS %d", len(cl), len(cr))
	}
	for i := range cl {
		if cl[i] != cr[i] {
			t.Fatalf("row %d: local %+v, GCS %+v", i, cl[i], cr[i])
		}
	}
	// Idempotent on GCS: nothing uploaded.
	if m := remote.run(date(2026, 2, 1), remote.opts.To); m.Uploads.Objects != 0 || m.Uploads.Bytes != 0 {
		t.Errorf("re-run on GCS uploaded %d objects (%d bytes)", m.Uploads.Objects, m.Uploads.Bytes)
	}
}

// TestConcurrentRunsGCS: two runs on one GCS prefix lose nothing.
func TestConcurrentRunsGCS(t *testing.T) {
	b := newGCS(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pipeline.Run(context.Background(), h.config(from, to))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	h.expectFaithful(from, to)
}
