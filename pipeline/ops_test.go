package pipeline_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, b, smallPopulation())
	h.run(h.opts.From, h.opts.To)
	ctx := context.Background()
	rep, err := pipeline.Verify(ctx, b)
	if err != nil || !rep.OK() {
		t.Fatalf("healthy dataset: err %v, problems %v", err, rep.Problems)
	}
	if rep.Transactions != int64(len(readRows(t, b, "transactions/"))) || rep.Manifests != 1 {
		t.Errorf("report %+v", rep)
	}

	jan := "transactions/month=2026-01/part-000.parquet"
	janData, _, err := b.Get(ctx, jan)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		break_ func(t *testing.T)
		want   string
	}{
		{"duplicate ids across partitions", func(t *testing.T) {
			if _, err := b.Put(ctx, "transactions/month=2030-01/part-000.parquet", janData, bucket.Condition{}); err != nil {
				t.Fatal(err)
			}
		}, "appears in"},
		{"corrupt partition", func(t *testing.T) {
			if _, err := b.Put(ctx, jan, []byte("PAR1 not really"), bucket.Condition{}); err != nil {
				t.Fatal(err)
			}
		}, jan},
		{"missing partition", func(t *testing.T) {
			if err := b.Delete(ctx, jan, bucket.Condition{}); err != nil {
				t.Fatal(err)
			}
		}, jan + ": written by run"},
		{"stray temp file", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "transactions", "month=2026-01", ".part-000.parquet.tmp-123"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "stray temp file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.break_(t)
			rep, err := pipeline.Verify(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), c.want) {
				t.Fatalf("problems %q, want one mentioning %q", rep.Problems, c.want)
			}
			// Repair for the next case.
			_ = b.Delete(ctx, "transactions/month=2030-01/part-000.parquet", bucket.Condition{})
			_ = os.Remove(filepath.Join(dir, "transactions", "month=2026-01", ".part-000.parquet.tmp-123"))
			if _, err := b.Put(ctx, jan, janData, bucket.Condition{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPurge removes a user everywhere, keeps everyone else, and is idempotent.
func TestPurge(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	u2 := h.srv.Users()[1]
	// Give user 2 a tombstone too.
	acct := h.srv.AccountIDs(u2.ID)[0]
	w := akahu.LocalDates(date(2026, 2, 1), to, auckland)
	txs := h.srv.Settled(acct, w.Start, w.End)
	if len(txs) == 0 {
		t.Fatal("no February transactions for user 2")
	}
	if err := h.srv.DeleteTransaction(txs[0].ID); err != nil {
		t.Fatal(err)
	}
	h.run(from, to)
	expectTombstones(t, b, map[string]int{txs[0].ID: 1})

	m, err := pipeline.Purge(context.Background(), pipeline.PurgeConfig{Out: b, UserID: u2.ID, Now: h.now})
	if err != nil {
		t.Fatal(err)
	}
	if m.Purge == nil || m.Purge.Rows["transactions"] == 0 || m.Purge.Rows["deletions"] != 1 || m.Purge.Rows["accounts"] == 0 {
		t.Fatalf("purge record %+v", m.Purge)
	}
	for _, prefix := range []string{"transactions/", "deletions/", "pending/", "accounts/"} {
		for _, a := range mustList(t, b, prefix) {
			data, _, _ := b.Get(context.Background(), a.Name)
			if bytes.Contains(data, []byte(u2.ID)) {
				t.Errorf("%s still holds user %s", a.Name, u2.ID)
			}
		}
	}
	for _, a := range mustList(t, b, "_manifests/") {
		if strings.Contains(a.Name, m.RunID) {
			continue
		}
		data, _, _ := b.Get(context.Background(), a.Name)
		if bytes.Contains(data, []byte(u2.ID)) || bytes.Contains(data, []byte(acct)) {
			t.Errorf("manifest %s still names user %s or its account", a.Name, u2.ID)
		}
	}
	// User 1 is untouched.
	rows := readRows(t, b, "transactions/")
	n1 := 0
	for _, r := range rows {
		if r.User == h.srv.Users()[0].ID {
			n1++
		}
	}
	if n1 == 0 {
		t.Fatal("purge removed the other user's rows")
	}
	// Idempotent.
	before := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/")
	m2, err := pipeline.Purge(context.Background(), pipeline.PurgeConfig{Out: b, UserID: u2.ID, Now: h.now})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Objects) != 0 || m2.Purge.Rows["transactions"] != 0 {
		t.Errorf("second purge wrote %d objects, removed %v", len(m2.Objects), m2.Purge.Rows)
	}
	after := snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/")
	if len(before) != len(after) {
		t.Error("second purge changed the object set")
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("second purge rewrote %s", k)
		}
	}
	// The next run still works and the purge manifest is not its starting point.
	h.run(time.Time{}, time.Time{})
}

// TestPurgeRevoked: with PurgeRevoked, a user whose token is revoked loses its data.
func TestPurgeRevoked(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	u2 := h.srv.Users()[1]
	h.srv.RevokeUser(u2.ID)
	cfg := h.config(from, to)
	cfg.PurgeRevoked = true
	m, err := pipeline.Run(context.Background(), cfg)
	if m == nil {
		t.Fatalf("run: %v", err)
	}
	if len(m.Purges) != 1 || m.Purges[0].ID != u2.ID {
		t.Fatalf("purges %+v", m.Purges)
	}
	for _, r := range readRows(t, b, "transactions/") {
		if r.User == u2.ID {
			t.Fatalf("revoked user's transaction %s kept", r.ID)
		}
	}
	// A later run that never sees the user id (401 from the first request) still
	// finds nothing of it.
	cfg.Start, cfg.End = "", ""
	if m, _ := pipeline.Run(context.Background(), cfg); m == nil {
		t.Fatal("later run did not commit")
	}
}

func mustList(t *testing.T, b bucket.Bucket, prefix string) []bucket.Attrs {
	t.Helper()
	l, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPurgeKeepsDigests: a partition a purge rewrites keeps its day digests (the
// footer key-value a daily run decides "unchanged" by without reading the rows), the
// same a run writing only the remaining rows writes. A purge once wrote the file's
// old digests back: they counted the purged rows, so no later daily run could use
// them and each read the partition's columns instead.
func TestPurgeKeepsDigests(t *testing.T) {
	const key = "akahu_parquet.day_digests"
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	u2 := h.srv.Users()[1]
	if _, err := pipeline.Purge(context.Background(), pipeline.PurgeConfig{Out: b, UserID: u2.ID, Now: h.now}); err != nil {
		t.Fatal(err)
	}
	// The same range, user 1 alone, into another dataset.
	alone := newLocal(t)
	cfg := h.config(from, to)
	cfg.Out, cfg.Users = alone, h.tokens[:1]
	if _, err := pipeline.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	digests := func(b bucket.Bucket, name string) (string, bool) {
		data, _, err := b.Get(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		md, err := parquetsink.ReadMetadata(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v, ok := md.KeyValue[key]
		return v, ok
	}
	objs := mustList(t, b, "transactions/")
	if len(objs) == 0 {
		t.Fatal("no transactions objects after the purge")
	}
	for _, a := range objs {
		got, ok := digests(b, a.Name)
		if !ok {
			t.Errorf("%s: no day digests after the purge", a.Name)
			continue
		}
		if want, _ := digests(alone, a.Name); got != want {
			t.Errorf("%s: day digests %q after the purge; a run of the remaining user writes %q", a.Name, got, want)
		}
	}
}
