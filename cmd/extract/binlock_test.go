package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinaryTwoRunsAtOnce starts two runs on the same --out at the same time, each
// extracting the accounts of one user, against a fake with latency. With a long
// --lock-wait both succeed one after the other, and the dataset holds every row of
// both users: neither run overwrote a partition without the other's rows
// (invariant 6).
func TestBinaryTwoRunsAtOnce(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(31))
	f.srv.SetLatency(20 * time.Millisecond)
	out := filepath.Join(t.TempDir(), "out")
	o := f.srv.Options()

	var procs []*binProc
	for _, u := range f.srv.Users() {
		args := append(f.rangeArgs(), "--lock-wait", "60s", "--accounts", strings.Join(f.srv.AccountIDs(u.ID), ","))
		procs = append(procs, f.start(t, nil, f.runArgs(out, args...)...))
	}
	for i, p := range procs {
		if r := p.wait(t); r.code != 0 || r.signal != 0 {
			t.Errorf("run %d of 2: %s", i+1, r)
		}
	}
	ds := mustReadDataset(t, out)
	rows, dups := ds.txByID()
	if len(dups) > 0 {
		t.Errorf("duplicate ids: %v", dups)
	}
	if d := diffRows(f.truth(o.From, o.To), rows); len(d) > 0 {
		t.Errorf("rows lost or wrong after two concurrent runs:\n%s", strings.Join(d, "\n"))
	}
	if len(ds.manifests) != 2 {
		t.Errorf("%d manifests, want one per run", len(ds.manifests))
	}
	if len(ds.inflight) > 0 || len(ds.locks) > 0 || len(ds.temps) > 0 {
		t.Errorf("leftovers: in-flight %v, locks %v, temp files %v", ds.inflight, ds.locks, ds.temps)
	}
}

// TestBinaryLockedOut starts a second run while the first holds the dataset's lock:
// with no time to wait the second exits non-zero naming the lock and the run that
// holds it, commits nothing, and the first run's data is intact.
func TestBinaryLockedOut(t *testing.T) {
	tests := []struct {
		name     string
		lockWait string
	}{
		{"wait 1ms", "1ms"},
		{"wait 0s", "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAkahu(t, smallOptions(32))
			f.srv.SetLatency(60 * time.Millisecond)
			out := filepath.Join(t.TempDir(), "out")
			o := f.srv.Options()
			lock := filepath.Join(out, "_locks", "shard-000-of-001.json")

			winner := f.start(t, nil, f.runArgs(out, f.rangeArgs()...)...)
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(lock); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the first run never took the lock:\n%s", winner.wait(t))
				}
				time.Sleep(2 * time.Millisecond)
			}
			loser := f.exec(t, nil, f.runArgs(out, append(f.rangeArgs(), "--lock-wait", tt.lockWait)...)...)
			won := winner.wait(t)
			if won.code != 0 || won.signal != 0 {
				t.Fatalf("the run holding the lock: %s", won)
			}
			m := committedRE.FindStringSubmatch(won.stdout)
			if m == nil {
				t.Fatalf("the run holding the lock printed no commit summary: %s", won)
			}
			if loser.code == 0 || loser.signal != 0 {
				t.Errorf("--lock-wait %s: the second run exited %d while the lock was held (it waited %s instead of giving up):\n%s",
					tt.lockWait, loser.code, loser.elapsed.Round(time.Millisecond), loser)
			} else {
				for _, want := range []string{"_locks/shard-000-of-001.json", m[1]} {
					if !strings.Contains(loser.stderr, want) {
						t.Errorf("the locked-out run does not name %q:\n%s", want, loser.stderr)
					}
				}
				if strings.Contains(loser.stdout, "committed") {
					t.Errorf("the locked-out run claims a commit:\n%s", loser.stdout)
				}
			}
			ds := mustReadDataset(t, out)
			rows, dups := ds.txByID()
			if len(dups) > 0 {
				t.Errorf("duplicate ids: %v", dups)
			}
			if d := diffRows(f.truth(o.From, o.To), rows); len(d) > 0 {
				t.Errorf("the winner's data is not intact:\n%s", strings.Join(d, "\n"))
			}
			wantManifests := 1
			if loser.code == 0 {
				wantManifests = 2
			}
			if len(ds.manifests) != wantManifests || len(ds.inflight) > 0 || len(ds.locks) > 0 {
				t.Errorf("manifests %d (want %d), in-flight %v, locks %v", len(ds.manifests), wantManifests, ds.inflight, ds.locks)
			}
		})
	}
}
