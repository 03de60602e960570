package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// TestRunRefreshFlags runs 'extract run --refresh --refresh-wait 1s' in-process
// against the fake: every user is asked to refresh; when an account never refreshes
// the run still exits 0, warning on stderr and noting it in the manifest.
func TestRunRefreshFlags(t *testing.T) {
	t.Parallel()
	for _, stall := range []bool{false, true} {
		name := map[bool]string{false: "refreshed", true: "stalled"}[stall]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAkahu(t, smallOptions(11))
			var stalled string
			if stall {
				for _, id := range f.srv.AccountIDs(f.srv.Users()[1].ID) {
					if info, _ := f.srv.Account(id); info.HasTransactions && info.Status == "ACTIVE" {
						stalled = id
						break
					}
				}
				f.srv.StallRefresh(stalled)
			}
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"run", "--out", out, "--user-tokens-file", f.tokens, "--refresh", "--refresh-wait", "1s"}, f.rangeArgs()...)
			env := map[string]string{"AKAHU_APP_TOKEN": f.srv.AppToken(), "AKAHU_BASE_URL": f.srv.URL}
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), args, &stdout, &stderr, func(k string) string { return env[k] })
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
			}
			if got, want := f.srv.Stats().ByKind["refresh"], int64(len(f.srv.Users())); got != want {
				t.Errorf("%d POST /refresh, want one per user (%d)", got, want)
			}
			warned := strings.Contains(stderr.String(), "not refreshed in time")
			if warned != stall || stall && !strings.Contains(stderr.String(), stalled) {
				t.Errorf("stalled %q: warning logged %v; stderr:\n%s", stalled, warned, stderr.String())
			}
			list, _ := filepath.Glob(filepath.Join(out, "_manifests", "*.json"))
			if len(list) != 1 {
				t.Fatalf("manifests %v, want one", list)
			}
			data, err := os.ReadFile(list[0])
			if err != nil {
				t.Fatal(err)
			}
			var m pipeline.Manifest
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			for _, a := range m.Accounts {
				noted := strings.Contains(a.Note, "not refreshed within 1s")
				if noted != (a.AccountID == stalled) {
					t.Errorf("account %s: note %q", a.AccountID, a.Note)
				}
				if a.AccountID == stalled && a.Rows == 0 {
					t.Errorf("stalled account %s not extracted", a.AccountID)
				}
			}
		})
	}
}
