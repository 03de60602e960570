package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// stderrLines returns the lines of stderr that start with prefix.
func stderrLines(stderr, prefix string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return out
}

// threeUserOptions is smallOptions with three users.
func threeUserOptions(seed int64) akahutest.Options {
	o := smallOptions(seed)
	o.Users = 3
	return o
}

// TestBinaryWrongAppTokenPurgesNothing is the incident as an operator saw it: a
// dataset holds several users' data, the app token is rotated, and the scheduled
// 'extract run --purge-revoked' gets 403 for every user. It must exit 3, commit
// nothing, purge nothing, and say that the app token was refused (it used to exit 1
// after deleting every row).
func TestBinaryWrongAppTokenPurgesNothing(t *testing.T) {
	f := newFakeAkahu(t, threeUserOptions(43))
	out := filepath.Join(t.TempDir(), "out")
	f.runOK(t, out, f.rangeArgs()...)
	before := mustReadDataset(t, out)
	rows, _ := before.txByID()
	if len(rows) == 0 || len(before.manifests) != 1 {
		t.Fatalf("baseline: %d rows, %d manifests", len(rows), len(before.manifests))
	}
	hashes := hashFiles(t, out, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/", "_dataset.json")

	for _, args := range [][]string{{"--purge-revoked"}, {"--purge-revoked", "--dry-run"}} {
		r := f.exec(t, []string{"AKAHU_APP_TOKEN=app_token_rotated_away"}, f.runArgs(out, append(f.rangeArgs(), args...)...)...)
		if r.code != 3 || r.signal != 0 {
			t.Fatalf("run %v with a wrong app token: %s; want exit 3", args, r)
		}
		t.Logf("run %v: %s", args, r)
		low := strings.ToLower(r.stderr)
		if !strings.Contains(low, "app token") || !strings.Contains(low, "refused") || !strings.Contains(r.stderr, "AKAHU_APP_TOKEN") {
			t.Errorf("stderr does not say the app token (AKAHU_APP_TOKEN) was refused:\n%s", r.stderr)
		}
		if committedRE.MatchString(r.stdout) {
			t.Errorf("stdout claims a commit:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout+r.stderr, "app_token_rotated_away") || strings.Contains(r.stdout+r.stderr, f.srv.AppToken()) {
			t.Error("output contains an app token")
		}
		after := hashFiles(t, out, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/", "_dataset.json")
		if len(after) != len(hashes) {
			t.Errorf("files: %d before, %d after", len(hashes), len(after))
		}
		for name, sum := range hashes {
			if after[name] != sum {
				t.Errorf("%s changed", name)
			}
		}
		ds := mustReadDataset(t, out)
		if got, _ := ds.txByID(); len(got) != len(rows) || len(ds.manifests) != 1 || len(ds.inflight) != 0 || len(ds.locks) != 0 {
			t.Errorf("after the refused run: %d rows (were %d), %d manifests, in-flight %v, locks %v",
				len(got), len(rows), len(ds.manifests), ds.inflight, ds.locks)
		}
	}
}

// TestBinaryRefusedUsersExit: a user refused alone is routine (exit 0, one line on
// stderr naming it, never a token); --fail-on-revoked restores exit 1; a run where
// every user is refused exits 1; --purge-revoked purges a 401 and never a 403.
func TestBinaryRefusedUsersExit(t *testing.T) {
	tests := []struct {
		name        string
		prep        func(f *fakeAkahu)
		args        []string
		wantCode    int
		wantLines   map[string]int // stderr prefix → count
		wantPurged  bool           // user 2's rows gone
		wantSummary string
	}{
		{name: "one user revoked", prep: revoke(1), wantCode: 0,
			wantLines: map[string]int{"revoked: user 2 ": 1, "failed:": 0}, wantSummary: "users: 1 revoked"},
		{name: "one user revoked, --fail-on-revoked", prep: revoke(1), args: []string{"--fail-on-revoked"}, wantCode: 1,
			wantLines: map[string]int{"revoked: user 2 ": 1}},
		{name: "one user forbidden", prep: forbid(1), args: []string{"--purge-revoked"}, wantCode: 0,
			wantLines: map[string]int{"forbidden: user 2 ": 1, "failed:": 0}, wantSummary: "users: 1 forbidden"},
		{name: "one user forbidden, --fail-on-revoked", prep: forbid(1), args: []string{"--fail-on-revoked"}, wantCode: 1,
			wantLines: map[string]int{"forbidden: user 2 ": 1}},
		{name: "one user revoked, --purge-revoked", prep: revoke(1), args: []string{"--purge-revoked"}, wantCode: 0,
			wantLines: map[string]int{"revoked: user 2 ": 1, "failed:": 0}, wantPurged: true, wantSummary: "users: 1 revoked, 1 purged"},
		{name: "every user revoked, --purge-revoked", prep: revoke(0, 1, 2), args: []string{"--purge-revoked"}, wantCode: 1,
			wantLines: map[string]int{"revoked: user ": 3, "failed:": 1}, wantSummary: "users: 3 revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAkahu(t, threeUserOptions(44))
			o := f.srv.Options()
			users := f.srv.Users()
			out := filepath.Join(t.TempDir(), "out")
			f.runOK(t, out, f.rangeArgs()...)
			tt.prep(f)
			r := f.exec(t, nil, f.runArgs(out, append(f.rangeArgs(), tt.args...)...)...)
			if r.code != tt.wantCode || r.signal != 0 {
				t.Fatalf("%s; want exit %d", r, tt.wantCode)
			}
			t.Logf("%s", r)
			if !committedRE.MatchString(r.stdout) {
				t.Errorf("the run must commit and say so:\n%s", r.stdout)
			}
			if tt.wantSummary != "" && !strings.Contains(r.stdout, tt.wantSummary) {
				t.Errorf("summary does not say %q:\n%s", tt.wantSummary, r.stdout)
			}
			for prefix, n := range tt.wantLines {
				if got := stderrLines(r.stderr, prefix); len(got) != n {
					t.Errorf("%d stderr lines starting %q, want %d:\n%s", len(got), prefix, n, r.stderr)
				}
			}
			for _, u := range users {
				if strings.Contains(r.stdout+r.stderr, u.Token) {
					t.Errorf("output contains the token of %s", u.ID)
				}
			}
			want := f.truth(o.From, o.To)
			if tt.wantPurged {
				want = f.truth(o.From, o.To, users[1].ID)
			}
			got, _ := mustReadDataset(t, out).txByID()
			if d := diffRows(want, got); len(d) > 0 {
				t.Errorf("transactions/ after the run:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

func revoke(idx ...int) func(*fakeAkahu) {
	return func(f *fakeAkahu) {
		for _, i := range idx {
			f.srv.RevokeUser(f.srv.Users()[i].ID)
		}
	}
}

func forbid(idx ...int) func(*fakeAkahu) {
	return func(f *fakeAkahu) {
		for _, i := range idx {
			f.srv.ForbidUser(f.srv.Users()[i].ID)
		}
	}
}
