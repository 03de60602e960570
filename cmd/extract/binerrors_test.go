package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryRevokedUser revokes the second user's token: a revoked user is routine,
// so the run exits 0 with one "revoked:" line on stderr naming that user (by its
// position in the tokens file, and by the id an earlier run recorded for the token),
// commits the first user's data, and, on an existing dataset, neither drops nor
// tombstones the revoked user's rows.
func TestBinaryRevokedUser(t *testing.T) {
	tests := []struct {
		name     string
		baseline bool
	}{
		{"new dataset", false},
		{"existing dataset", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAkahu(t, smallOptions(41))
			o := f.srv.Options()
			out := filepath.Join(t.TempDir(), "out")
			users := f.srv.Users()
			if tt.baseline {
				f.runOK(t, out, f.rangeArgs()...)
			}
			f.srv.RevokeUser(users[1].ID)

			r := f.exec(t, nil, f.runArgs(out, f.rangeArgs()...)...)
			if r.code != 0 || r.signal != 0 {
				t.Fatalf("run with a revoked user: %s; want exit 0", r)
			}
			revoked := stderrLines(r.stderr, "revoked:")
			if len(revoked) != 1 || len(stderrLines(r.stderr, "failed:")) != 0 {
				t.Fatalf("%d revoked lines on stderr, want 1 (user 2) and no failure:\n%s", len(revoked), r.stderr)
			}
			if !strings.Contains(revoked[0], "user 2") || strings.Contains(revoked[0], users[0].ID) ||
				tt.baseline != strings.Contains(revoked[0], users[1].ID) {
				t.Errorf("revoked line does not name user 2 alone (and its id when an earlier run knew it): %q", revoked[0])
			}
			if !committedRE.MatchString(r.stdout) {
				t.Errorf("the run must commit and say so:\n%s", r.stdout)
			}

			ds := mustReadDataset(t, out)
			rows, dups := ds.txByID()
			if len(dups) > 0 {
				t.Errorf("duplicate ids: %v", dups)
			}
			want := f.truth(o.From, o.To, users[1].ID)
			if tt.baseline {
				// The revoked user's rows stay as the baseline wrote them: the fake
				// still has them, it just refuses the token.
				want = f.truth(o.From, o.To)
			}
			if d := diffRows(want, rows); len(d) > 0 {
				t.Errorf("transactions/ after the partial run:\n%s", strings.Join(d, "\n"))
			}
			if len(ds.deletions) > 0 {
				t.Errorf("a revoked user caused %d tombstones", len(ds.deletions))
			}
			latest := ds.manifests[len(ds.manifests)-1]
			// The manifest lists the users that are not ok and counts every user.
			if len(latest.Users) != 1 || latest.Users[0].Status != "revoked" || latest.Users[0].Index != 2 ||
				latest.UserCounts["ok"] != 1 || latest.UserCounts["revoked"] != 1 {
				t.Errorf("manifest users %+v, counts %v: want user 2 listed revoked, one ok and one revoked counted", latest.Users, latest.UserCounts)
			}
			if len(latest.Failures) != 0 {
				t.Errorf("manifest failures %v, want none (a revoked user is reported in users)", latest.Failures)
			}
		})
	}
}

// TestBinarySecretsStayOut runs the binary in every way it can talk about tokens
// (debug logs, a revoked token, a dry run, a single-user token from the
// environment, a bad token) and searches stdout, stderr and every byte of every file
// under --out for the app token and each user token (invariant 9).
func TestBinarySecretsStayOut(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(42))
	users := f.srv.Users()
	secrets := map[string]string{"app token": f.srv.AppToken()}
	for i, u := range users {
		secrets["token of user "+u.ID] = u.Token
		if len(u.Token) < 12 || i > 0 && u.Token == users[0].Token {
			t.Fatalf("fake token %q is not distinctive enough to search for", u.Token)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	debug := []string{"--log-level", "debug", "--log-format", "json"}
	steps := []struct {
		name string
		env  []string
		args []string
		prep func()
	}{
		{"backfill with debug logs", nil, f.runArgs(out, append(f.rangeArgs(), debug...)...), nil},
		{"dry run", nil, f.runArgs(out, append(f.rangeArgs(), append(debug, "--dry-run")...)...), nil},
		{"single user from AKAHU_USER_TOKEN", []string{"AKAHU_USER_TOKEN=" + users[0].Token},
			append([]string{"run", "--out", out}, append(f.rangeArgs(), debug...)...), nil},
		{"unknown user token", []string{"AKAHU_USER_TOKEN=" + users[0].Token + "x"},
			append([]string{"run", "--out", out}, append(f.rangeArgs(), debug...)...), nil},
		{"revoked user", nil, f.runArgs(out, append(f.rangeArgs(), debug...)...), func() { f.srv.RevokeUser(users[1].ID) }},
	}
	for _, st := range steps {
		if st.prep != nil {
			st.prep()
		}
		r := f.exec(t, st.env, st.args...)
		if r.signal != 0 {
			t.Fatalf("%s: %s", st.name, r)
		}
		t.Logf("%s: exit %d, %d bytes of stdout and stderr searched", st.name, r.code, len(r.stdout)+len(r.stderr))
		for what, secret := range secrets {
			if strings.Contains(r.stdout, secret) {
				t.Errorf("%s: stdout contains the %s", st.name, what)
			}
			if strings.Contains(r.stderr, secret) {
				t.Errorf("%s: stderr contains the %s", st.name, what)
			}
		}
	}
	files := 0
	err := filepath.Walk(out, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for what, secret := range secrets {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s contains the %s", path, what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under %s: the runs wrote nothing to search", files, out)
	}
}
