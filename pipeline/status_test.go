package pipeline_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// TestStatus follows one dataset through a fresh backfill, a run in which one account
// fails, a run in progress, a crashed run's marker, a stale lock and an object no
// manifest records, checking what Status reports at each step against the dataset.
func TestStatus(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())

	if _, err := pipeline.Status(ctx, b, time.Now()); !errors.Is(err, pipeline.ErrNotDataset) {
		t.Fatalf("status of an empty directory: %v, want ErrNotDataset", err)
	}

	// 1. A fresh backfill.
	m1 := h.run(h.opts.From, h.opts.To)
	now := m1.FinishedAt.Add(time.Hour)
	rep, err := pipeline.Status(ctx, b, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shards != 1 || len(rep.ShardRuns) != 1 || rep.Manifests != 1 || rep.Dataset.TimeZone != "Pacific/Auckland" || rep.Dataset.Buckets != 1 {
		t.Fatalf("layout: %d shards %+v, %d manifests, dataset %+v", rep.Shards, rep.ShardRuns, rep.Manifests, rep.Dataset)
	}
	lr := rep.ShardRuns[0].LastRun
	if lr == nil || lr.RunID != m1.RunID || lr.AgeSeconds != 3600 || lr.Counts != m1.Counts || lr.Accounts != 8 || lr.Users != 2 ||
		len(lr.FailedAccounts) != 0 || len(lr.RefusedUsers) != 0 {
		t.Fatalf("last run %+v, want %s an hour old with its counts %+v", lr, m1.RunID, m1.Counts)
	}
	if got := rep.ShardRuns[0].CoveredThrough; got != m1.Range.End {
		t.Errorf("covered through %s, want %s", got, m1.Range.End)
	}
	// The harness's clock starts the morning after the last posting.
	if got := rep.ShardRuns[0].DaysBehindToday; got != 1 {
		t.Errorf("covered %d days before today, want 1", got)
	}
	if len(rep.Lagging) != 0 || len(rep.Locks) != 0 || len(rep.InFlight) != 0 {
		t.Errorf("fresh dataset: lagging %+v, locks %+v, in flight %+v; want none", rep.Lagging, rep.Locks, rep.InFlight)
	}
	checkTables(t, b, rep, 0)
	if stale := rep.CheckAge(2 * time.Hour); len(stale) != 0 {
		t.Errorf("max age 2h, last run 1h ago: stale %v", stale)
	}
	if stale := rep.CheckAge(30 * time.Minute); !slices.Equal(stale, []int{0}) {
		t.Errorf("max age 30m, last run 1h ago: stale %v, want [0]", stale)
	}

	// 2. Five days later one account's bank is down: the run commits without it.
	acct, _, _ := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))
	// The user's walk (GET /transactions) fails, so it is redone account by account,
	// and that account's walk fails too.
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100000, PathContains: "/v1/transactions?"})
	h.srv.InjectFault(akahutest.Fault{Kind: akahutest.ServerError, Status: 503, Count: 100000, PathContains: "/accounts/" + acct + "/transactions?"})
	h.shift.Add(int64(5 * 24 * time.Hour))
	m2, err := pipeline.Run(ctx, h.config(time.Time{}, time.Time{}))
	if !errors.Is(err, pipeline.ErrPartial) {
		t.Fatalf("run with a failing account: %v", err)
	}
	h.srv.ClearFaults()
	now = m2.FinishedAt.Add(time.Minute)
	if rep, err = pipeline.Status(ctx, b, now); err != nil {
		t.Fatal(err)
	}
	lr = rep.ShardRuns[0].LastRun
	if lr.RunID != m2.RunID || len(lr.FailedAccounts) != 1 || lr.FailedAccounts[0].AccountID != acct || len(lr.Failures) == 0 {
		t.Fatalf("last run %s, failed accounts %+v, failures %q; want %s with %s failed", lr.RunID, lr.FailedAccounts, lr.Failures, m2.RunID, acct)
	}
	if rep.ShardRuns[0].CoveredThrough != m2.Range.End {
		t.Errorf("shard covered through %s, want the run's end %s", rep.ShardRuns[0].CoveredThrough, m2.Range.End)
	}
	if len(rep.Lagging) != 1 {
		t.Fatalf("lagging %+v, want only %s", rep.Lagging, acct)
	}
	lag := rep.Lagging[0]
	behind := int(mustDate(t, m2.Range.End).Sub(mustDate(t, m1.Range.End)) / (24 * time.Hour))
	if lag.AccountID != acct || lag.CoveredThrough != m1.Range.End || lag.DaysBehind != behind || behind < 5 ||
		lag.LastStatus != "failed" || lag.UserID == "" || !strings.Contains(lag.Error, "503") {
		t.Errorf("lag %+v, want %s covered through %s, %d days behind, failed with a 503", lag, acct, m1.Range.End, behind)
	}
	checkTables(t, b, rep, 0)

	// 3. A run in progress (its lock held, its marker written), a crashed run's
	// marker, a marker its run left after committing, and an object no manifest
	// records.
	lockName := "_locks/shard-000-of-001.json"
	live := "29990101T000000.000Z-s000-11111111"
	crashed := m2.RunID[:len("20060102T150405.000Z")] + "-s000-22222222"
	putJSON(t, b, lockName, map[string]any{"run_id": live, "host": "worker-1", "pid": 4242,
		"acquired_at": now.Add(-time.Minute), "expires_at": now.Add(time.Minute)})
	putJSON(t, b, "_inflight/"+live+".json", map[string]any{"run_id": live, "shard": 0, "shards": 1, "started_at": now.Add(-time.Minute)})
	putJSON(t, b, "_inflight/"+crashed+".json", map[string]any{"run_id": crashed, "shard": 0, "shards": 1, "started_at": now.Add(-2 * time.Hour)})
	putJSON(t, b, "_inflight/"+m2.RunID+".json", map[string]any{"run_id": m2.RunID, "shard": 0, "shards": 1, "started_at": m2.StartedAt})
	if _, err := b.Put(ctx, "transactions/month=2031-01/part-000.parquet", []byte("PAR1 not recorded"), bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	if rep, err = pipeline.Status(ctx, b, now); err != nil {
		t.Fatal(err)
	}
	if len(rep.Locks) != 1 || rep.Locks[0].State != "held" || rep.Locks[0].RunID != live || rep.Locks[0].Host != "worker-1" || rep.Locks[0].PID != 4242 {
		t.Errorf("locks %+v, want %s held by %s", rep.Locks, lockName, live)
	}
	states := map[string]string{}
	for _, f := range rep.InFlight {
		states[f.RunID] = f.State
	}
	want := map[string]string{live: "in progress", crashed: "crashed", m2.RunID: "committed"}
	if !maps.Equal(states, want) {
		t.Errorf("in-flight states %v, want %v", states, want)
	}
	for _, f := range rep.InFlight {
		if f.RunID == crashed && f.AgeSeconds != 7200 {
			t.Errorf("crashed marker age %ds, want 7200", f.AgeSeconds)
		}
	}
	checkTables(t, b, rep, 1)

	// 4. The live run's lease runs out: its lock is stale and its marker a crash.
	if rep, err = pipeline.Status(ctx, b, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(rep.Locks) != 1 || rep.Locks[0].State != "expired" {
		t.Errorf("locks %+v, want %s expired", rep.Locks, lockName)
	}
	for _, f := range rep.InFlight {
		if f.RunID == live && f.State != "crashed" {
			t.Errorf("marker of %s whose lock expired: %s, want crashed", live, f.State)
		}
	}
}

// checkTables compares the report's tables with the listing and the rows in the
// transactions files; unrecorded objects are expected under transactions/.
func checkTables(t *testing.T, b bucket.Bucket, rep *pipeline.StatusReport, unrecorded int) {
	t.Helper()
	all, err := b.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, ts := range rep.Tables {
		names = append(names, ts.Name)
		var objects int
		var bytes int64
		for _, a := range all {
			if strings.HasPrefix(a.Name, ts.Name+"/") {
				objects++
				bytes += a.Size
			}
		}
		if ts.Objects != objects || ts.Bytes != bytes {
			t.Errorf("%s: %d objects, %d bytes; the listing has %d and %d", ts.Name, ts.Objects, ts.Bytes, objects, bytes)
		}
		wantUnrecorded := 0
		if ts.Name == "transactions" {
			wantUnrecorded = unrecorded
			if unrecorded == 0 {
				if rows := int64(len(readRows(t, b, "transactions/"))); ts.Rows != rows {
					t.Errorf("transactions: %d rows, the files hold %d", ts.Rows, rows)
				}
			}
		}
		if ts.Unrecorded != wantUnrecorded {
			t.Errorf("%s: %d unrecorded objects, want %d", ts.Name, ts.Unrecorded, wantUnrecorded)
		}
		if ts.Objects > 0 && ts.Objects > ts.Unrecorded && ts.Rows == 0 && ts.Name != "deletions" {
			t.Errorf("%s: %d objects but no rows", ts.Name, ts.Objects)
		}
	}
	if !slices.Equal(names, []string{"transactions", "pending", "accounts", "deletions"}) {
		t.Errorf("tables %v", names)
	}
}

func mustDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
