//go:build !crashtest

package main

import (
	"path/filepath"
	"testing"
)

// TestKillSeamNeedsBuildTag: a normal build ignores EXTRACT_TEST_KILL_AT. The run
// below writes many objects in this very process; were the crash tests' seam compiled
// in, the test process would SIGKILL itself at its first write.
func TestKillSeamNeedsBuildTag(t *testing.T) {
	if killHook(func(string) string { return "1" }) != nil {
		t.Fatal("killHook is active in a build without -tags crashtest")
	}
	p := newInProcess(t)
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := p.main(map[string]string{"EXTRACT_TEST_KILL_AT": "1"}, "run", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}
