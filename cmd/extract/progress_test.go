package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// tty is a buffer that says it is a terminal.
type tty struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (t *tty) IsTerminal() bool { return true }

func (t *tty) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.Write(p)
}

func (t *tty) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}

// checkTerminal checks what a terminal shows: every log line after the first progress
// line starts by clearing it, the progress line is drawn again after each, and the
// output ends with the last progress line and a newline.
func checkTerminal(t *testing.T, out, lastProgress string) {
	t.Helper()
	first := strings.Index(out, clearLine+"extracted ")
	if first < 0 {
		t.Fatalf("no progress line drawn:\n%q", out)
	}
	for i := first; ; {
		j := strings.Index(out[i:], "time=")
		if j < 0 {
			break
		}
		at := i + j
		if !strings.HasSuffix(out[:at], clearLine) {
			t.Errorf("log line at %d not preceded by clearing the progress line: %q", at, out[max(0, at-60):min(len(out), at+40)])
		}
		nl := strings.IndexByte(out[at:], '\n')
		if nl < 0 {
			t.Fatalf("log line without a newline: %q", out[at:])
		}
		i = at + nl + 1
		if !strings.HasPrefix(out[i:], "extracted ") {
			t.Errorf("progress line not redrawn after a log line: %q", out[i:min(len(out), i+40)])
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline: %q", out[max(0, len(out)-80):])
	}
	last := out[strings.LastIndex(out, clearLine)+len(clearLine):]
	if !strings.HasPrefix(last, lastProgress) || strings.Count(last, "\n") != 1 {
		t.Errorf("last line %q, want the progress line %q… and one newline", last, lastProgress)
	}
}

// TestProgressDisplay drives the display as a run does, with a text log writing
// through it, and checks where it draws nothing: not a terminal, or JSON/gcp logs.
func TestProgressDisplay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		terminal bool
		format   string
		want     bool
	}{{true, "text", true}, {false, "text", false}, {true, "json", false}, {true, "gcp", false}, {false, "json", false}} {
		var buf bytes.Buffer
		w, p := progressOut(&buf, c.terminal, c.format)
		if (p != nil) != c.want || (w == any(&buf)) == c.want {
			t.Errorf("terminal %v, %s logs: display %v, want %v", c.terminal, c.format, p != nil, c.want)
		}
	}

	out := &tty{}
	w, p := progressOut(out, true, "text")
	log := slog.New(slog.NewTextHandler(w, nil))
	var st akahu.Stats
	update := p.report(func() akahu.Stats { return st })
	log.Info("before any progress")
	st.Requests, st.Transactions = 3, 120
	update(1, 4)
	log.Info("one")
	st.Requests, st.Transactions = 9, 480
	update(4, 4)
	log.Warn("two", "k", "v")
	p.end()
	got := out.String()
	if !strings.HasPrefix(got, "time=") {
		t.Errorf("a log line before any progress is written as is: %q", got)
	}
	checkTerminal(t, got, "extracted 4/4 (100%) · 480 rows")
	// After the run's line ended, lines pass through untouched.
	log.Info("after")
	if rest := out.String()[len(got):]; strings.Contains(rest, "\r") || !strings.Contains(rest, "msg=after") {
		t.Errorf("after end: %q", rest)
	}
}

// pipe is a writer that is not a terminal.
type pipe struct{ t *tty }

func (p pipe) Write(b []byte) (int, error) { return p.t.Write(b) }

// TestRunProgress runs 'extract run' in-process against the fake with stderr a
// terminal, then a pipe: the terminal shows the progress line with the log lines
// above it; the pipe gets JSON logs and no control characters at all.
func TestRunProgress(t *testing.T) {
	t.Parallel()
	for _, terminal := range []bool{true, false} {
		f := newFakeAkahu(t, smallOptions(13))
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"run", "--out", out, "--user-tokens-file", f.tokens}, f.rangeArgs()...)
		env := map[string]string{"AKAHU_APP_TOKEN": f.srv.AppToken(), "AKAHU_BASE_URL": f.srv.URL}
		var stdout bytes.Buffer
		stderr := &tty{}
		var w interface{ Write([]byte) (int, error) } = stderr
		if !terminal {
			w = pipe{stderr}
		}
		code := realMain(context.Background(), args, &stdout, w, func(k string) string { return env[k] })
		if code != exitOK {
			t.Fatalf("terminal %v: exit %d; stderr:\n%s", terminal, code, stderr.String())
		}
		got := stderr.String()
		if strings.ContainsAny(stdout.String(), "\r\x1b") {
			t.Errorf("terminal %v: control characters on stdout: %q", terminal, stdout.String())
		}
		if !terminal {
			if strings.ContainsAny(got, "\r\x1b") || strings.Contains(got, "extracted ") {
				t.Errorf("progress drawn on a pipe: %q", got)
			}
			if !strings.HasPrefix(got, `{"time":`) {
				t.Errorf("logs on a pipe are not JSON: %.80q", got)
			}
			continue
		}
		checkTerminal(t, got, "extracted ")
		if !strings.Contains(got, "msg=committed") {
			t.Errorf("no text log lines on the terminal: %q", got)
		}
	}
}
