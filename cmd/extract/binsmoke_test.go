package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var committedRE = regexp.MustCompile(`(?m)^run (\S+) committed in \S+: .*; (\d+) objects uploaded`)

// TestBinaryRunSmoke runs the built binary with a tokens file over the fake's four
// months, then again: the first run writes the layout and every settled transaction,
// the second uploads nothing and changes no byte.
func TestBinaryRunSmoke(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(11))
	out := filepath.Join(t.TempDir(), "out")
	o := f.srv.Options()

	r := f.runOK(t, out, f.rangeArgs()...)
	m := committedRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("first run printed no commit summary:\n%s", r)
	}
	runID := m[1]
	ds := mustReadDataset(t, out)
	for _, want := range []string{
		"_dataset.json",
		"transactions/month=2026-06/part-000.parquet",
		"transactions/month=2026-07/part-000.parquet",
		"transactions/month=2026-08/part-000.parquet",
		"transactions/month=2026-09/part-000.parquet",
		"_manifests/" + runID + ".json",
		"pending/part-000.parquet",
		"accounts/snapshot_date=*/part-000.parquet",
	} {
		if !ds.hasFile(want) {
			t.Errorf("no %s in %s; files: %v", want, out, ds.files)
		}
	}
	if len(ds.manifests) != 1 || ds.manifests[0].RunID != runID {
		t.Errorf("manifests %+v, want exactly run %s", ds.manifests, runID)
	}
	rows, dups := ds.txByID()
	if len(dups) > 0 {
		t.Errorf("duplicate ids: %v", dups)
	}
	if d := diffRows(f.truth(o.From, o.To), rows); len(d) > 0 {
		t.Errorf("transactions/ differ from Akahu:\n%s", strings.Join(d, "\n"))
	}
	if int(ds.pendingRows) != f.pendingCount() {
		t.Errorf("pending/ has %d rows, Akahu serves %d pending", ds.pendingRows, f.pendingCount())
	}
	if len(ds.deletions) != 0 || len(ds.inflight) != 0 || len(ds.locks) != 0 || len(ds.temps) != 0 {
		t.Errorf("after a clean backfill: deletions %d, in-flight %v, locks %v, temp files %v",
			len(ds.deletions), ds.inflight, ds.locks, ds.temps)
	}

	before := hashFiles(t, out, "transactions/", "deletions/", "pending/", "accounts/", "_dataset.json")
	r = f.runOK(t, out, f.rangeArgs()...)
	if !strings.Contains(r.stdout, " 0 objects uploaded") {
		t.Errorf("identical second run uploaded something:\n%s", r)
	}
	after := hashFiles(t, out, "transactions/", "deletions/", "pending/", "accounts/", "_dataset.json")
	if len(before) != len(after) {
		t.Errorf("second run changed the data file set: %d → %d files", len(before), len(after))
	}
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("second run rewrote %s", name)
		}
	}
	ds = mustReadDataset(t, out)
	if len(ds.manifests) != 2 {
		t.Fatalf("after two runs %d manifests, want 2", len(ds.manifests))
	}
	// The summary says what the run read, as its manifest records it: the second run
	// reads back the partitions it re-extracts.
	reads := readsRE.FindStringSubmatch(r.stdout)
	mr := ds.manifests[1].Reads
	if reads == nil || reads[1] != strconv.FormatInt(mr.Bytes, 10) || reads[2] != strconv.FormatInt(mr.Objects, 10) ||
		reads[3] != strconv.FormatInt(mr.Ranges, 10) || mr.Bytes == 0 {
		t.Errorf("summary of the second run does not report its reads %+v:\n%s", mr, r.stdout)
	}
}

var readsRE = regexp.MustCompile(`; (\d+) bytes read \((\d+) objects, (\d+) ranges\)`)

// TestBinaryDryRun checks that --dry-run prints the plan and writes nothing, on a new
// directory and on an existing dataset.
func TestBinaryDryRun(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(12))
	existing := filepath.Join(t.TempDir(), "existing")
	f.runOK(t, existing, f.rangeArgs()...)

	tests := []struct {
		name string
		out  string
	}{
		{"new directory", filepath.Join(t.TempDir(), "fresh")},
		{"existing dataset", existing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hashFiles(t, tt.out, "")
			r := f.runOK(t, tt.out, append(f.rangeArgs(), "--dry-run")...)
			for _, want := range []string{"dry run: nothing is written", "range 2026-06-01..2026-09-30",
				"transactions/month=2026-06/part-000.parquet", "transactions/month=2026-09/part-000.parquet"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("plan does not say %q:\n%s", want, r.stdout)
				}
			}
			for _, u := range f.srv.Users() {
				for _, acct := range f.srv.AccountIDs(u.ID) {
					if !strings.Contains(r.stdout, acct) {
						t.Errorf("plan does not list account %s:\n%s", acct, r.stdout)
					}
				}
			}
			if strings.Contains(r.stdout, "committed") {
				t.Errorf("dry run claims a commit:\n%s", r.stdout)
			}
			after := hashFiles(t, tt.out, "")
			if len(after) != len(before) {
				t.Errorf("dry run changed the file set: %d → %d files: %v", len(before), len(after), keys(after))
			}
			for name, sum := range before {
				if after[name] != sum {
					t.Errorf("dry run changed %s", name)
				}
			}
		})
	}
}

// TestBinaryUsageErrors checks exit status 2 and a message for bad invocations; no
// output directory is created for them.
func TestBinaryUsageErrors(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(13))
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no command", nil, nil, "usage:"},
		{"unknown command", nil, []string{"frobnicate"}, "unknown command"},
		{"no out", nil, []string{"run", "--user-tokens-file", f.tokens}, "--out is required"},
		{"bad start", nil, []string{"run", "--out", out, "--user-tokens-file", f.tokens, "--start", "2026-13-01"}, "--start"},
		{"end before start", nil, []string{"run", "--out", out, "--user-tokens-file", f.tokens, "--start", "2026-09-01", "--end", "2026-08-01"}, "before"},
		{"token as argument", nil, []string{"run", "--out", out, "--user-tokens-file", f.tokens, "user_token_x"}, "never taken from flags"},
		{"no user token", nil, []string{"run", "--out", out}, "AKAHU_USER_TOKEN"},
		{"missing tokens file", nil, []string{"run", "--out", out, "--user-tokens-file", filepath.Join(dir, "nope")}, "--user-tokens-file"},
		{"plain http to a remote host", []string{"AKAHU_BASE_URL=http://api.example.com/v1"}, []string{"run", "--out", out, "--user-tokens-file", f.tokens}, "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.exec(t, tt.env, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (usage):\n%s", r.code, r)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not mention %q:\n%s", tt.want, r.stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a usage error created %s", out)
			}
		})
	}
}

// hashFiles hashes every regular file under dir whose relative name starts with
// one of prefixes ("" for all). A missing dir has no files.
func hashFiles(t testing.TB, dir string, prefixes ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		for _, p := range prefixes {
			if strings.HasPrefix(rel, p) {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				s := sha256.Sum256(data)
				out[rel] = hex.EncodeToString(s[:])
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys[V any](m map[string]V) []string { return sortedIDs(m) }
