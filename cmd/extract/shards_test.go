package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// inProcess runs realMain against a fake Akahu with a small population.
type inProcess struct {
	srv *akahutest.Server
	env map[string]string
}

func newInProcess(t *testing.T) *inProcess {
	t.Helper()
	srv := akahutest.NewServer(akahutest.Options{Seed: 5, Users: 1, AccountsPerUser: 3, TxPerAccountPerMonth: 4,
		From: nzDate(2026, 6, 1), To: nzDate(2026, 7, 31)})
	t.Cleanup(srv.Close)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(srv.Users()[0].Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &inProcess{srv: srv, env: map[string]string{"AKAHU_APP_TOKEN": srv.AppToken(), "AKAHU_BASE_URL": srv.URL, "TOKENS": tokens}}
}

func (p *inProcess) main(env map[string]string, args ...string) (int, string, string) {
	if len(args) > 0 && args[0] == "run" {
		args = append(args, "--user-tokens-file", p.env["TOKENS"], "--start", "2026-06-01", "--end", "2026-07-31", "--lock-wait", "0s")
	}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return p.env[k]
	}
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), args, &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

// TestShardCountCLI: the dataset records its shard count; a run with another count
// exits 2 naming both counts and 'extract reshard'; reshard changes the count, after
// which the old count is refused and the new one runs.
func TestShardCountCLI(t *testing.T) {
	p := newInProcess(t)
	out := filepath.Join(t.TempDir(), "out")
	steps := []struct {
		args  []string
		code  int
		wants []string
	}{
		{[]string{"run", "--out", out, "--shard", "1", "--shards", "2"}, exitOK, nil},
		{[]string{"run", "--out", out}, exitUsage, []string{"dataset is sharded 2 ways", "--shards 1", "extract reshard"}},
		{[]string{"run", "--out", out, "--shard", "0", "--shards", "3"}, exitUsage, []string{"sharded 2 ways", "--shards 3"}},
		{[]string{"reshard", "--out", out, "--shards", "1"}, exitOK, []string{"from 2 to 1"}},
		{[]string{"run", "--out", out, "--shard", "0", "--shards", "2"}, exitUsage, []string{"not sharded", "--shards 2"}},
		{[]string{"run", "--out", out}, exitOK, nil},
		{[]string{"purge", "--out", out, "--user", p.srv.Users()[0].ID, "--shards", "2"}, exitUsage, []string{"--shards 2"}},
	}
	for _, s := range steps {
		code, stdout, stderr := p.main(nil, s.args...)
		if code != s.code {
			t.Fatalf("extract %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), code, s.code, stdout, stderr)
		}
		for _, w := range s.wants {
			if !strings.Contains(stdout+stderr, w) {
				t.Errorf("extract %s does not say %q:\n%s%s", strings.Join(s.args, " "), w, stdout, stderr)
			}
		}
	}
}

// failingLockRefresh fails every Put of a lock object after the first (taking it)
// with a transient error, and counts writes of anything else.
type failingLockRefresh struct {
	bucket.Bucket
	locks, writes atomic.Int64
}

func (f *failingLockRefresh) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	if strings.HasPrefix(name, "_locks/") {
		if f.locks.Add(1) > 1 {
			return bucket.Attrs{}, bucket.ErrTransient
		}
	} else {
		f.writes.Add(1)
	}
	return f.Bucket.Put(ctx, name, data, cond)
}

// slowSource answers transactions only once the run's context ends, or after a bound
// (so a run that never stops cannot hang the test).
type slowSource struct{ pipeline.Source }

func (s slowSource) Transactions(ctx context.Context, user akahu.Token, accountID string, w akahu.Window, fn func(akahu.Page) error) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
	}
	return s.Source.Transactions(ctx, user, accountID, w, fn)
}

func (s slowSource) AllTransactions(ctx context.Context, user akahu.Token, w akahu.Window, fn func(akahu.Page) error) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
	}
	return s.Source.AllTransactions(ctx, user, w, fn)
}

// TestLockLostExit3: a run that cannot refresh its lock exits 3 before its lease
// ends, with an error naming the lock, and commits nothing.
func TestLockLostExit3(t *testing.T) {
	p := newInProcess(t)
	b, err := bucket.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client, err := akahu.New(akahu.Config{BaseURL: p.srv.URL, AppToken: akahu.Token(p.srv.AppToken())})
	if err != nil {
		t.Fatal(err)
	}
	out := &failingLockRefresh{Bucket: b}
	cfg := pipeline.Config{Out: out, Source: slowSource{client}, Users: []akahu.Token{akahu.Token(p.srv.Users()[0].Token)},
		Start: "2026-06-01", End: "2026-07-31", LockTTL: 600 * time.Millisecond}
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), cfg, &stdout, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitFailed, stdout.String(), stderr.String())
	}
	for _, w := range []string{"nothing committed", "lock lost", "_locks/shard-000-of-001.json", "transient"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr does not say %q: %s", w, stderr.String())
		}
	}
	if l, _ := b.List(context.Background(), "_manifests/"); len(l) > 0 {
		t.Errorf("committed: %v", l)
	}
	if n := out.writes.Load(); n != 1 { // _dataset.json, before the lock
		t.Errorf("%d writes besides the lock, want only _dataset.json's", n)
	}
	if strings.Contains(stdout.String(), "committed") {
		t.Errorf("stdout claims a commit: %s", stdout.String())
	}
}

// TestTaskRunsItsShardsInTurn: a process that is task 1 of 2 of a 4-shard job runs
// shards 1 and 3, one after another, each committing its own run; task 0 then runs
// shards 0 and 2, and between them the four runs extract the user once.
func TestTaskRunsItsShardsInTurn(t *testing.T) {
	p := newInProcess(t)
	out := filepath.Join(t.TempDir(), "out")
	committed := regexp.MustCompile(`run \S+-s(\d{3})-\S+ committed`)
	var rows int
	for task, want := range [][]string{{"000", "002"}, {"001", "003"}} {
		env := map[string]string{"CLOUD_RUN_TASK_INDEX": strconv.Itoa(task), "CLOUD_RUN_TASK_COUNT": "2"}
		code, stdout, stderr := p.main(env, "run", "--out", out, "--shards", "4", "--buckets", "4")
		if code != exitOK {
			t.Fatalf("task %d: exit %d\nstdout: %s\nstderr: %s", task, code, stdout, stderr)
		}
		var got []string
		for _, m := range committed.FindAllStringSubmatch(stdout, -1) {
			got = append(got, m[1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("task %d committed shards %v, want %v:\n%s", task, got, want, stdout)
		}
		for _, m := range regexp.MustCompile(`: (\d+) inserted`).FindAllStringSubmatch(stdout, -1) {
			n, _ := strconv.Atoi(m[1])
			rows += n
		}
	}
	if want := len(p.srv.SettledUser(p.srv.Users()[0].ID, time.Time{}, time.Time{})); rows == 0 || rows != want {
		t.Errorf("the shards inserted %d rows, want the user's %d", rows, want)
	}
}

// TestTaskExitsWithTheWorstStatus: a task's shard runs go on after one of them ends
// with a failure status, and the task exits with the worst of them: here the shard
// of a revoked user exits 1 (--fail-on-revoked) and the other 0.
func TestTaskExitsWithTheWorstStatus(t *testing.T) {
	p := newInProcess(t)
	out := filepath.Join(t.TempDir(), "out")
	committed := regexp.MustCompile(`run \S+-s(\d{3})-\S+ committed`)
	args := []string{"run", "--out", out, "--shards", "2", "--buckets", "2", "--tasks", "1", "--fail-on-revoked"}
	for i, want := range []int{exitOK, exitPartial} {
		if i == 1 {
			p.srv.RevokeUser(p.srv.Users()[0].ID)
		}
		code, stdout, stderr := p.main(nil, args...)
		if code != want {
			t.Fatalf("run %d: exit %d, want %d\nstdout: %s\nstderr: %s", i+1, code, want, stdout, stderr)
		}
		if got := committed.FindAllStringSubmatch(stdout, -1); len(got) != 2 || got[0][1] != "000" || got[1][1] != "001" {
			t.Errorf("run %d: committed %v, want shards 000 and 001:\n%s", i+1, got, stdout)
		}
		// The user is shard 0's (the fake's seed decides): the failing run comes
		// first, and the task goes on to shard 1.
		if first, _, _ := strings.Cut(stdout, "\n"); i == 1 && (!strings.Contains(first, "-s000-") || !strings.Contains(first, "1 revoked")) {
			t.Errorf("run 2: shard 0's summary %q does not report the revoked user", first)
		}
	}
}
