package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// setStatusNow fixes the clock of 'extract status' for one test.
func setStatusNow(t *testing.T, now time.Time) {
	t.Helper()
	prev := statusNow
	statusNow = func() time.Time { return now }
	t.Cleanup(func() { statusNow = prev })
}

func runStatus(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = realMain(context.Background(), append([]string{"status"}, args...), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// writeStatusFixture writes a two-shard dataset by hand: shard 0 committed a run in
// which one account failed (its covered_through 8 days behind) and one user was
// revoked; shard 1 never committed, its run died (a marker and an expired lock left);
// and one transactions object was written by no committed run.
func writeStatusFixture(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, data []byte) bucket.Attrs {
		t.Helper()
		a, err := b.Put(ctx, name, data, bucket.Condition{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	putJSON := func(name string, v any) {
		t.Helper()
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		put(name, data)
	}
	day := func(s string) time.Time {
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	putJSON("_dataset.json", pipeline.Dataset{LayoutVersion: 1, SchemaVersion: 1, TimeZone: "Pacific/Auckland", Grain: "month",
		Buckets: 4, CreatedAt: day("2026-10-01T08:00:00Z"), Shards: 2})

	run0 := "20261129T200000.000Z-s000-a1b2c3"
	var objects []pipeline.ObjectWrite
	for _, o := range []struct {
		name, kind string
		size       int
		rows       int64
	}{
		{"transactions/month=2026-10/part-000.parquet", "transactions", 3000, 120},
		{"transactions/month=2026-11/part-000.parquet", "transactions", 2000, 80},
		{"transactions/month=2026-11/part-002.parquet", "transactions", 1500, 45},
		{"pending/part-000.parquet", "pending", 700, 3},
		{"accounts/snapshot_date=2026-11-30/part-000.parquet", "accounts", 900, 3},
		{"deletions/month=2026-11/" + run0 + ".parquet", "deletions", 800, 2},
	} {
		a := put(o.name, bytes.Repeat([]byte{byte(len(objects) + 1)}, o.size))
		objects = append(objects, pipeline.ObjectWrite{Path: o.name, Kind: o.kind, Op: "put", Bytes: a.Size, Rows: o.rows, CRC32C: a.CRC32C, Generation: a.Generation})
	}
	putJSON("_manifests/"+run0+".json", pipeline.Manifest{ManifestVersion: 1, Kind: "run", RunID: run0, Shard: 0, Shards: 2,
		StartedAt: day("2026-11-29T20:00:00Z"), FinishedAt: day("2026-11-29T20:04:30Z"), ToolVersion: "dev", SchemaVersion: 1,
		Range: pipeline.DateRange{Start: "2026-10-31", End: "2026-11-30"},
		Users: []pipeline.UserStatus{
			{UserID: "user_1", Index: 0, TokenFP: "00", Status: "ok"},
			{UserID: "user_2", Index: 1, TokenFP: "01", Status: "revoked", Error: "401 Unauthorized", Note: "data kept: run without --purge-revoked"},
		},
		Accounts: []pipeline.AccountStatus{
			{UserID: "user_1", AccountID: "acc_a", Status: "ok", Rows: 200},
			{UserID: "user_1", AccountID: "acc_b", Status: "failed", Error: "window 2026-11: GET transactions: 503 Service Unavailable after 8 attempts"},
			{UserID: "user_2", AccountID: "acc_c", Status: "revoked"},
		},
		Objects:        objects,
		Counts:         pipeline.Counts{Inserted: 12, Updated: 2, Unchanged: 231, Moved: 1, Deleted: 2, Pending: 3, Accounts: 3},
		CoveredThrough: map[string]string{"acc_a": "2026-11-30", "acc_b": "2026-11-22", "acc_c": "2026-11-25"},
		Failures:       []string{"account acc_b (user user_1): window 2026-11: GET transactions: 503 Service Unavailable after 8 attempts"},
	})

	run1 := "20261130T200000.000Z-s001-d4e5f6"
	putJSON("_inflight/"+run1+".json", map[string]any{"run_id": run1, "shard": 1, "shards": 2, "started_at": day("2026-11-30T20:00:00Z")})
	putJSON("_locks/shard-001-of-002.json", map[string]any{"run_id": run1, "host": "job-task-1", "pid": 7,
		"acquired_at": day("2026-11-30T20:00:00Z"), "expires_at": day("2026-11-30T20:02:00Z")})
	put("transactions/month=2026-11/part-001.parquet", bytes.Repeat([]byte{9}, 1200))
}

// TestStatusGolden checks the text report of a hand-written dataset (a failed
// account, a revoked user, a shard that never committed, a crashed run's marker, a
// stale lock, an unrecorded object) against a golden file, and that it exits 1 because
// shard 1 never committed.
func TestStatusGolden(t *testing.T) {
	dir := t.TempDir()
	writeStatusFixture(t, dir)
	setStatusNow(t, time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC))
	code, stdout, stderr := runStatus(t, "--out", dir)
	if code != exitPartial || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 1 (shard 1 never committed) and nothing on stderr", code, stderr)
	}
	got := strings.ReplaceAll(stdout, filepath.ToSlash(dir), "DIR")
	path := filepath.Join("testdata", "status.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/extract -run TestStatusGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (rerun with -update if intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestStatusJSON: --json prints one document that parses into pipeline.StatusReport
// with what the fixture holds.
func TestStatusJSON(t *testing.T) {
	dir := t.TempDir()
	writeStatusFixture(t, dir)
	now := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	setStatusNow(t, now)
	code, stdout, stderr := runStatus(t, "--out", dir, "--json", "--max-age", "48h")
	if code != exitPartial {
		t.Errorf("exit %d, stderr %q; want 1", code, stderr)
	}
	var rep pipeline.StatusReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Errorf("--json printed more than one document")
	}
	if !rep.Now.Equal(now) || rep.Shards != 2 || rep.Dataset.Buckets != 4 || len(rep.ShardRuns) != 2 || rep.MaxAgeSeconds != 48*3600 ||
		!slices.Equal(rep.StaleShards, []int{1}) {
		t.Fatalf("now %s, %d shards, %d buckets, max age %ds, stale %v", rep.Now, rep.Shards, rep.Dataset.Buckets, rep.MaxAgeSeconds, rep.StaleShards)
	}
	lr := rep.ShardRuns[0].LastRun
	if lr == nil || lr.AgeSeconds != 25*3600+55*60+30 || len(lr.FailedAccounts) != 1 || len(lr.RefusedUsers) != 1 || lr.RefusedUsers[0].Status != "revoked" ||
		rep.ShardRuns[1].LastRun != nil {
		t.Errorf("shard runs %+v", rep.ShardRuns)
	}
	if len(rep.Lagging) != 2 || rep.Lagging[0].AccountID != "acc_b" || rep.Lagging[0].DaysBehind != 8 || rep.Lagging[0].LastStatus != "failed" ||
		rep.Lagging[1].AccountID != "acc_c" || rep.Lagging[1].DaysBehind != 5 {
		t.Errorf("lagging %+v, want acc_b 8 days (failed), acc_c 5 days", rep.Lagging)
	}
	if len(rep.Locks) != 1 || rep.Locks[0].State != "expired" || len(rep.InFlight) != 1 || rep.InFlight[0].State != "crashed" || rep.InFlight[0].Shard != 1 {
		t.Errorf("locks %+v, in flight %+v; want one expired lock and shard 1's crashed marker", rep.Locks, rep.InFlight)
	}
	tables := map[string]pipeline.TableStatus{}
	for _, ts := range rep.Tables {
		tables[ts.Name] = ts
	}
	if tx := tables["transactions"]; tx.Objects != 4 || tx.Rows != 245 || tx.Bytes != 7700 || tx.Unrecorded != 1 {
		t.Errorf("transactions %+v, want 4 objects, 245 rows, 7700 bytes, 1 unrecorded", tx)
	}
	if d := tables["deletions"]; d.Objects != 1 || d.Rows != 2 || d.Bytes != 800 {
		t.Errorf("deletions %+v", d)
	}
}

// TestStatusDemo runs the demo and asks for its status: exit 0 within --max-age, 1
// past it; the JSON report's transactions rows equal what verify counts.
func TestStatusDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo-out")
	var out, errOut bytes.Buffer
	if code := realMain(context.Background(), []string{"demo", "--out", dir, "--users", "2", "--accounts-per-user", "2", "--tx-per-month", "10"},
		&out, &errOut, func(string) string { return "" }); code != exitOK {
		t.Fatalf("demo: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	b, err := bucket.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := pipeline.Verify(context.Background(), b)
	if err != nil || !ver.OK() {
		t.Fatalf("verify: %v %+v", err, ver)
	}
	rep, err := pipeline.Status(context.Background(), b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	finished := rep.ShardRuns[0].LastRun.FinishedAt

	cases := []struct {
		name   string
		now    time.Time
		maxAge string
		code   int
		text   string
	}{
		{"fresh", finished.Add(time.Hour), "36h", exitOK, "ok: every shard committed within 36h\n"},
		{"stale", finished.Add(37 * time.Hour), "36h", exitPartial, "STALE: not committed within 36h: shard 0 last committed 1d13h ago\n"},
		{"short max age", finished.Add(10 * time.Minute), "5m", exitPartial, "STALE: not committed within 5m: shard 0 last committed 10m00s ago\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			setStatusNow(t, c.now)
			code, stdout, stderr := runStatus(t, "--out", dir, "--max-age", c.maxAge)
			if code != c.code || !strings.HasSuffix(stdout, c.text) {
				t.Errorf("exit %d, want %d; output ends %q, want %q\n%s", code, c.code, stdout[max(0, len(stdout)-120):], c.text, stderr)
			}
			for _, want := range []string{"lagging accounts: none", "locks: none", "in-flight markers: none", "1 bucket by user, 1 shard"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			code, stdout, _ = runStatus(t, "--out", dir, "--max-age", c.maxAge, "--json")
			var rep pipeline.StatusReport
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != c.code {
				t.Fatalf("--json: exit %d, %v\n%s", code, err, stdout)
			}
			var rows int64
			for _, ts := range rep.Tables {
				if ts.Unrecorded != 0 {
					t.Errorf("%s: %d unrecorded objects in a finished demo", ts.Name, ts.Unrecorded)
				}
				if ts.Name == "transactions" {
					rows = ts.Rows
				}
			}
			if rows != ver.Transactions || rows == 0 {
				t.Errorf("transactions rows %d, verify counts %d", rows, ver.Transactions)
			}
		})
	}
}

// TestStatusRefused: misuse exits 2 naming the problem; a directory that is not a
// dataset too, and status creates nothing.
func TestStatusRefused(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no out", nil, "--out is required"},
		{"extra argument", []string{"--out", empty, "x"}, "takes no arguments"},
		{"bad max age", []string{"--out", empty, "--max-age", "0s"}, "--max-age must be positive"},
		{"missing directory", []string{"--out", missing}, "no such file or directory"},
		{"not a dataset", []string{"--out", empty}, "not a dataset"},
		{"other scheme", []string{"--out", "s3://b/p"}, "only local directories and gs://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runStatus(t, c.args...)
			if code != exitUsage || !strings.Contains(stderr, c.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 and %q", code, stderr, stdout, c.want)
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("status created %s: %v", missing, err)
	}
}
