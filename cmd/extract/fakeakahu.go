package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// cmdFakeAkahu serves the fake Akahu (the one 'extract demo' runs against) over plain
// http until ctx ends (SIGINT or SIGTERM), so people can develop their own tools
// against it. It prints the base URL and the fake's test tokens on stdout.
func cmdFakeAkahu(ctx context.Context, args []string, stdout, stderr io.Writer, _ env) int {
	fs := flag.NewFlagSet("extract fake-akahu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "host:port to listen on (port 0: a free port); a host other than loopback serves the network")
	users := fs.Int("users", akahutest.DefaultUsers, "users in the fake population")
	seed := fs.Int64("seed", akahutest.DefaultSeed, "seed of the population and of the random faults (same seed, same data and tokens)")
	faults := fs.String("faults", "", "random faults, e.g. 429=0.05,503=0.02,slow=0.01: a probability per request for each of "+faultKeys)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintln(stderr, "extract fake-akahu:", err)
		return code
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *users < 1 {
		return fail(exitUsage, fmt.Errorf("--users %d: want at least 1", *users))
	}
	if *seed == 0 {
		return fail(exitUsage, errors.New("--seed 0: want a non-zero seed"))
	}
	spec, err := parseFaults(*faults)
	if err != nil {
		return fail(exitUsage, err)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fail(exitUsage, fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:8080", *addr))
	}
	if host == "" {
		return fail(exitUsage, fmt.Errorf("--addr %q: name the host: 127.0.0.1:PORT for this machine only, 0.0.0.0:PORT for every interface", *addr))
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(exitUsage, fmt.Errorf("--addr %q: %w", *addr, err))
	}
	fake := akahutest.New(akahutest.Options{Seed: *seed, Users: *users})
	srv := &http.Server{Handler: spec.handler(fake, *seed), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	base := "http://" + ln.Addr().String() + "/v1"
	if !isLoopbackHost(host) {
		fmt.Fprintf(stderr, "extract fake-akahu: serving plain http beyond this machine on %s; 'extract run' accepts http:// only for a loopback AKAHU_BASE_URL\n", ln.Addr())
	}
	us := fake.Users()
	fmt.Fprintf(stdout, "fake Akahu serving %s: %d user(s), seed %d, faults: %s\n", base, len(us), *seed, spec)
	fmt.Fprintln(stdout, "These tokens are the fake's test tokens, not secrets; they work only against this server.")
	fmt.Fprintf(stdout, "AKAHU_BASE_URL=%s\nAKAHU_APP_TOKEN=%s\n", base, fake.AppToken())
	for _, u := range us {
		fmt.Fprintf(stdout, "user %s token %s\n", u.ID, u.Token)
	}
	fmt.Fprintln(stdout, "Example (the first user; for all of them put the tokens in a file, one per line, each optionally followed by its user id, and pass --user-tokens-file):")
	fmt.Fprintf(stdout, "  AKAHU_BASE_URL=%s AKAHU_APP_TOKEN=%s AKAHU_USER_TOKEN=%s extract run --out ./dev-out\n", base, fake.AppToken(), us[0].Token)
	fmt.Fprintln(stdout, "Stop it with Ctrl-C (SIGINT) or SIGTERM.")

	select {
	case err := <-done:
		return fail(exitFailed, fmt.Errorf("serving %s: %w", ln.Addr(), err))
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return exitOK
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// faultKeys documents the --faults spec's keys.
const faultKeys = "429 (rate limited, no Retry-After), 500-599 (that status), truncate (body cut short), malformed (invalid JSON), reset (connection reset), slow (answer after 1s)"

// slowFault is how long a 'slow' fault delays its answer.
const slowFault = time.Second

// faultRate is one entry of a --faults spec: the probability that a request suffers it.
type faultRate struct {
	key   string // as written in the spec: "429", "503", "slow", ...
	fault akahutest.Fault
	rate  float64
}

// faultSpec is a parsed --faults value: comma-separated key=probability entries, each
// key at most once, each probability in [0, 1], together at most 1.
type faultSpec []faultRate

// parseFaults parses a --faults spec; the empty string means no faults. Errors name the
// offending entry.
func parseFaults(s string) (faultSpec, error) {
	if s == "" {
		return nil, nil
	}
	var spec faultSpec
	total := 0.0
	for _, part := range strings.Split(s, ",") {
		key, val, ok := strings.Cut(part, "=")
		if !ok || key == "" || val == "" {
			return nil, fmt.Errorf("--faults: entry %q: want KEY=PROBABILITY, e.g. 503=0.02", part)
		}
		ft, ok := faultOf(key)
		if !ok {
			return nil, fmt.Errorf("--faults: entry %q: unknown fault %q; want %s", part, key, faultKeys)
		}
		rate, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(rate) || rate < 0 || rate > 1 {
			return nil, fmt.Errorf("--faults: entry %q: probability %q is not a number from 0 to 1", part, val)
		}
		if slices.ContainsFunc(spec, func(r faultRate) bool { return r.key == key }) {
			return nil, fmt.Errorf("--faults: entry %q: fault %q given twice", part, key)
		}
		total += rate
		if total > 1+1e-9 {
			return nil, fmt.Errorf("--faults: entry %q: the probabilities add up to more than 1", part)
		}
		spec = append(spec, faultRate{key: key, fault: ft, rate: rate})
	}
	return spec, nil
}

// faultOf maps a spec key onto the fake's fault.
func faultOf(key string) (akahutest.Fault, bool) {
	switch key {
	case "429":
		return akahutest.Fault{Kind: akahutest.RateLimit}, true
	case "truncate":
		return akahutest.Fault{Kind: akahutest.Truncate}, true
	case "malformed":
		return akahutest.Fault{Kind: akahutest.Malformed}, true
	case "reset":
		return akahutest.Fault{Kind: akahutest.Reset}, true
	case "slow":
		return akahutest.Fault{Kind: akahutest.Slow, Delay: slowFault}, true
	}
	if len(key) == 3 && key[0] == '5' {
		if st, err := strconv.Atoi(key); err == nil && st >= 500 && st <= 599 {
			return akahutest.Fault{Kind: akahutest.ServerError, Status: st}, true
		}
	}
	return akahutest.Fault{}, false
}

// String writes the spec back in its own syntax ("none" when empty).
func (s faultSpec) String() string {
	if len(s) == 0 {
		return "none"
	}
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = r.key + "=" + strconv.FormatFloat(r.rate, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// handler draws, for each request, at most one fault of the spec (a deterministic
// sequence from seed) and queues it on the fake for that request's path before the fake
// answers it: the fake's own scripted fault injection does the rest.
func (s faultSpec) handler(fake *akahutest.Fake, seed int64) http.Handler {
	if len(s) == 0 {
		return fake
	}
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(uint64(seed), 0xfa017))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		x := rnd.Float64()
		mu.Unlock()
		for _, f := range s {
			if x < f.rate {
				ft := f.fault
				ft.PathContains = r.URL.RequestURI()
				fake.InjectFault(ft)
				break
			}
			x -= f.rate
		}
		fake.ServeHTTP(w, r)
	})
}
