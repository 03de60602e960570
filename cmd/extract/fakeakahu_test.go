package main

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// lockedBuffer is a bytes.Buffer safe to write from the command's goroutine while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeAkahuCmd is 'extract fake-akahu' running in-process, with what it printed.
type fakeAkahuCmd struct {
	base, app string
	users     []string // user tokens, in order
	example   string
	stdout    string
	stop      func() int // cancels its context and returns its exit status
}

// startFakeAkahu runs 'extract fake-akahu args...' in-process on a free loopback port
// and reads the URL and tokens it prints.
func startFakeAkahu(t *testing.T, args ...string) *fakeAkahuCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- realMain(ctx, append([]string{"fake-akahu", "--addr", "127.0.0.1:0"}, args...), &stdout, &stderr, func(string) string { return "" })
	}()
	stop := func() int {
		cancel()
		select {
		case c := <-code:
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("fake-akahu did not stop after its context was cancelled")
			return -1
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "Stop it with") {
		select {
		case c := <-code:
			t.Fatalf("fake-akahu exited %d before serving: %s%s", c, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("fake-akahu printed no URL within 30s: %s", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f := &fakeAkahuCmd{stdout: stdout.String(), stop: stop}
	t.Cleanup(func() { cancel() })
	for _, line := range strings.Split(f.stdout, "\n") {
		switch {
		case strings.HasPrefix(line, "AKAHU_BASE_URL="):
			f.base = strings.TrimPrefix(line, "AKAHU_BASE_URL=")
		case strings.HasPrefix(line, "AKAHU_APP_TOKEN="):
			f.app = strings.TrimPrefix(line, "AKAHU_APP_TOKEN=")
		case strings.HasPrefix(line, "user "):
			fields := strings.Fields(line)
			f.users = append(f.users, fields[len(fields)-1])
		case strings.Contains(line, "extract run --out ./dev-out"):
			f.example = strings.TrimSpace(line)
		}
	}
	if f.base == "" || f.app == "" || len(f.users) == 0 || f.example == "" {
		t.Fatalf("fake-akahu's output lacks the URL, tokens or example:\n%s", f.stdout)
	}
	if stderr.String() != "" {
		t.Errorf("fake-akahu wrote to stderr on loopback: %s", stderr.String())
	}
	return f
}

// TestFakeAkahuServesARun starts 'extract fake-akahu', takes the URL and tokens it
// printed, runs 'extract run' with exactly the environment its example line gives
// (the first user), then with every user's token in a file, and stops it by
// cancelling its context as SIGINT would: exit 0.
func TestFakeAkahuServesARun(t *testing.T) {
	f := startFakeAkahu(t, "--users", "2", "--seed", "7")
	if len(f.users) != 2 {
		t.Fatalf("%d user tokens printed, want 2:\n%s", len(f.users), f.stdout)
	}
	if !strings.Contains(f.stdout, "test tokens, not secrets") {
		t.Errorf("no line saying the tokens are the fake's:\n%s", f.stdout)
	}
	if !strings.HasPrefix(f.base, "http://127.0.0.1:") || !strings.HasSuffix(f.base, "/v1") {
		t.Errorf("base URL %q", f.base)
	}
	env := map[string]string{}
	for _, w := range strings.Fields(f.example) {
		if k, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "AKAHU_") {
			env[k] = v
		}
	}
	if env["AKAHU_BASE_URL"] != f.base || env["AKAHU_APP_TOKEN"] != f.app || env["AKAHU_USER_TOKEN"] != f.users[0] {
		t.Fatalf("example %q does not use the printed URL and tokens", f.example)
	}
	getenv := func(k string) string { return env[k] }
	dir := t.TempDir()
	out := filepath.Join(dir, "dev-out")
	window := []string{"--out", out, "--start", "2026-10-01", "--end", "2026-11-20", "--log-level", "warn"}
	var stdout, stderr bytes.Buffer
	if code := realMain(context.Background(), append([]string{"run"}, window...), &stdout, &stderr, getenv); code != exitOK {
		t.Fatalf("extract run against the fake exited %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(strings.Join(f.users, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(env, "AKAHU_USER_TOKEN")
	stdout.Reset()
	stderr.Reset()
	if code := realMain(context.Background(), append([]string{"run", "--user-tokens-file", tokens}, window...), &stdout, &stderr, getenv); code != exitOK {
		t.Fatalf("extract run for both users exited %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	b, err := bucket.NewLocal(out)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pipeline.Verify(context.Background(), b)
	if err != nil || !rep.OK() || rep.Transactions == 0 {
		t.Fatalf("verify: %v, %+v", err, rep)
	}
	if code := f.stop(); code != exitOK {
		t.Errorf("fake-akahu exited %d when stopped, want 0", code)
	}
	if _, err := http.Get(f.base + "/me"); err == nil {
		t.Errorf("the fake still answers after it stopped")
	}
}

// TestFakeAkahuFaults checks that --faults reaches the fake's fault injection: with a
// probability of 1 every request suffers that fault.
func TestFakeAkahuFaults(t *testing.T) {
	for _, c := range []struct {
		spec string
		want int
	}{{"429=1", http.StatusTooManyRequests}, {"503=1", http.StatusServiceUnavailable}, {"502=0.5,500=0.5", 0}, {"", http.StatusOK}} {
		t.Run(c.spec, func(t *testing.T) {
			f := startFakeAkahu(t, "--users", "1", "--faults", c.spec)
			for range 5 {
				req, _ := http.NewRequest(http.MethodGet, f.base+"/accounts", nil)
				req.Header.Set("X-Akahu-Id", f.app)
				req.Header.Set("Authorization", "Bearer "+f.users[0])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if c.want == 0 && resp.StatusCode != 500 && resp.StatusCode != 502 || c.want != 0 && resp.StatusCode != c.want {
					t.Fatalf("--faults %q: status %d, want %d", c.spec, resp.StatusCode, c.want)
				}
			}
			if code := f.stop(); code != exitOK {
				t.Errorf("exit %d", code)
			}
		})
	}
}

// TestFakeAkahuFlagErrors: bad flags exit 2 with a message naming what was wrong.
func TestFakeAkahuFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--users", "0"}, "--users 0"},
		{[]string{"--seed", "0"}, "--seed 0"},
		{[]string{"--addr", ":8080"}, "name the host"},
		{[]string{"--addr", "127.0.0.1"}, "want host:port"},
		{[]string{"--addr", "256.0.0.1:0"}, "--addr"},
		{[]string{"--faults", "404=0.1"}, `unknown fault "404"`},
		{[]string{"--faults", "429=0.5,slow=2"}, `entry "slow=2"`},
		{[]string{"--faults", "429=0.6,503=0.6"}, "add up to more than 1"},
		{[]string{"--faults", "429"}, `entry "429": want KEY=PROBABILITY`},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := realMain(context.Background(), append([]string{"fake-akahu"}, c.args...), &stdout, &stderr, func(string) string { return "" })
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) || stdout.Len() > 0 {
			t.Errorf("fake-akahu %q: exit %d, stderr %q, stdout %q; want exit 2 and %q", c.args, code, stderr.String(), stdout.String(), c.want)
		}
	}
}

// TestParseFaults checks the spec parser's answers and errors.
func TestParseFaults(t *testing.T) {
	good := map[string]string{
		"":                                   "none",
		"429=0.05,503=0.02,slow=0.01":        "429=0.05,503=0.02,slow=0.01",
		"truncate=0.1,malformed=.1":          "truncate=0.1,malformed=0.1",
		"reset=0,599=1":                      "reset=0,599=1",
		"500=0.5,502=0.25,504=0.25":          "500=0.5,502=0.25,504=0.25",
		"429=1e-3":                           "429=0.001",
		"429=0.1,500=0.2,slow=0.3,reset=0.4": "429=0.1,500=0.2,slow=0.3,reset=0.4",
	}
	for in, want := range good {
		s, err := parseFaults(in)
		if err != nil || s.String() != want {
			t.Errorf("parseFaults(%q) = %v, %v; want %s", in, s, err, want)
		}
	}
	bad := map[string]string{
		",":                  `entry ""`,
		"429=0.1,":           `entry ""`,
		"429=0.1,429=0.2":    `fault "429" given twice`,
		"499=0.1":            `unknown fault "499"`,
		"600=0.1":            `unknown fault "600"`,
		"5000=0.1":           `unknown fault "5000"`,
		"Slow=0.1":           `unknown fault "Slow"`,
		" 429=0.1":           `unknown fault " 429"`,
		"429=-0.1":           `probability "-0.1"`,
		"429=NaN":            `probability "NaN"`,
		"429=Inf":            `probability "Inf"`,
		"429=5%":             `probability "5%"`,
		"429=0.1=0.2":        `probability "0.1=0.2"`,
		"=0.1":               `entry "=0.1"`,
		"slow=0.7,reset=0.4": `entry "reset=0.4": the probabilities add up`,
	}
	for in, want := range bad {
		if s, err := parseFaults(in); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--faults: ") {
			t.Errorf("parseFaults(%q) = %v, %v; want an error containing %q", in, s, err, want)
		}
	}
}

// FuzzParseFaults: the parser never panics; what it accepts has known keys, each once,
// probabilities in [0, 1] adding up to at most 1, and prints back to a spec that parses
// to the same thing; what it refuses it explains under --faults.
func FuzzParseFaults(f *testing.F) {
	for _, s := range []string{"", "429=0.05,503=0.02,slow=0.01", "reset=1", "429=0.6,500=0.6", "x", "=", ",,", "503=1e-400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parseFaults(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--faults: ") {
				t.Fatalf("error %q does not name --faults", err)
			}
			return
		}
		total := 0.0
		seen := map[string]bool{}
		for _, r := range s {
			if seen[r.key] || r.rate < 0 || r.rate > 1 || math.IsNaN(r.rate) {
				t.Fatalf("%q parsed to %v", in, s)
			}
			if _, ok := faultOf(r.key); !ok {
				t.Fatalf("%q: unknown key %q accepted", in, r.key)
			}
			seen[r.key] = true
			total += r.rate
		}
		if total > 1+1e-9 {
			t.Fatalf("%q: probabilities add up to %v", in, total)
		}
		again, err := parseFaults(s.String())
		if len(s) == 0 {
			if s.String() != "none" {
				t.Fatalf("empty spec prints %q", s.String())
			}
			return
		}
		if err != nil || again.String() != s.String() {
			t.Fatalf("%q prints as %q, which parses to %v, %v", in, s.String(), again, err)
		}
	})
}
