package faultproxy_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/akahu-etl/akahu-parquet/internal/faultproxy"
)

// echo is the server behind the proxy: it counts the requests it handled and
// answers with what it received.
type echo struct {
	hits atomic.Int64
	srv  *httptest.Server
}

func newEcho(t *testing.T) *echo {
	t.Helper()
	e := &echo{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.Header.Get("X-Test"))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "%s %s?%s %s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, body)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func newProxy(t *testing.T, target string, seed uint64, rules ...faultproxy.Rule) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(faultproxy.Config{Target: target, Seed: seed, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// client does not reuse connections, so that the transport never retries a
// request on its own and every fault reaches the caller.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func send(c *http.Client, method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Test", "hdr")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Echo") != "" {
		b = append(b, " hdr="+resp.Header.Get("X-Echo")...)
	}
	return resp.StatusCode, string(b), err
}

func TestTransparent(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.srv.URL, 1)
	code, got, err := send(client(), http.MethodPost, p.URL()+"/upload/storage/v1/b/x/o?name=a%2Fb&uploadType=multipart", "payload")
	if err != nil {
		t.Fatal(err)
	}
	want := "POST /upload/storage/v1/b/x/o?name=a%2Fb&uploadType=multipart payload hdr=hdr"
	if code != http.StatusCreated || got != want {
		t.Errorf("answer %d %q, want 201 %q", code, got, want)
	}
	if s := p.Stats(); s.Requests != 1 || s.Forwarded != 1 || e.hits.Load() != 1 {
		t.Errorf("stats %v, server hits %d; want 1 request forwarded once", s, e.hits.Load())
	}
}

// TestEachKind injects each fault into every request and checks what the
// client and the server see.
func TestEachKind(t *testing.T) {
	tests := []struct {
		kind       faultproxy.Kind
		serverActs bool
		clientErr  func(error) bool // nil: the client gets an answer
		code       int
	}{
		{faultproxy.Unavailable, false, nil, http.StatusServiceUnavailable},
		{faultproxy.Reset, false, func(err error) bool { return errors.Is(err, syscall.ECONNRESET) }, 0},
		{faultproxy.LostAnswer, true, func(err error) bool { return errors.Is(err, io.EOF) }, 0},
		{faultproxy.Slow, true, nil, http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			e := newEcho(t)
			p := newProxy(t, e.srv.URL, 1, faultproxy.Rule{Kind: tc.kind, Rate: 1})
			code, _, err := send(client(), http.MethodPut, p.URL()+"/o", "x")
			switch {
			case tc.clientErr == nil && err != nil:
				t.Errorf("error %v, want an answer", err)
			case tc.clientErr != nil && (err == nil || !tc.clientErr(err)):
				t.Errorf("answer %d, error %v; want the connection closed (%s)", code, err, tc.kind)
			case tc.clientErr == nil && code != tc.code:
				t.Errorf("status %d, want %d", code, tc.code)
			}
			if acted := e.hits.Load() == 1; acted != tc.serverActs {
				t.Errorf("server handled the request: %v, want %v", acted, tc.serverActs)
			}
			s := p.Stats()
			for _, k := range faultproxy.Kinds {
				want := int64(0)
				if k == tc.kind {
					want = 1
				}
				if s.Faults[k] != want {
					t.Errorf("stats %v: %d %s faults, want %d", s, s.Faults[k], k, want)
				}
			}
		})
	}
}

// TestFilters checks that methods, path and limit restrict a rule.
func TestFilters(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.srv.URL, 1,
		faultproxy.Rule{Kind: faultproxy.Unavailable, Rate: 1, Methods: []string{http.MethodDelete}},
		faultproxy.Rule{Kind: faultproxy.Unavailable, Rate: 1, Path: "/upload/", Limit: 2},
	)
	c := client()
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/b/o", http.StatusCreated},
		{http.MethodDelete, "/b/o", http.StatusServiceUnavailable},
		{http.MethodPost, "/upload/o", http.StatusServiceUnavailable},
		{http.MethodPost, "/upload/o", http.StatusServiceUnavailable},
		{http.MethodPost, "/upload/o", http.StatusCreated}, // limit reached
		{http.MethodDelete, "/b/o", http.StatusServiceUnavailable},
	}
	for i, tc := range tests {
		code, _, err := send(c, tc.method, p.URL()+tc.path, "")
		if err != nil || code != tc.want {
			t.Errorf("request %d %s %s: %d %v, want %d", i, tc.method, tc.path, code, err, tc.want)
		}
	}
	if s := p.Stats(); s.Faults[faultproxy.Unavailable] != 4 || s.Requests != 6 || s.Forwarded != 2 {
		t.Errorf("stats %v, want 6 requests, 4 faults, 2 forwarded", s)
	}
	p.SetRules(nil)
	if code, _, err := send(c, http.MethodDelete, p.URL()+"/b/o", ""); err != nil || code != http.StatusCreated {
		t.Errorf("after SetRules(nil): %d %v, want the server's answer", code, err)
	}
}

// TestRatesAndSeed sends requests one at a time: the fault counts follow the
// rates, and the same seed gives the same faults in the same order.
func TestRatesAndSeed(t *testing.T) {
	rules := []faultproxy.Rule{{Kind: faultproxy.Unavailable, Rate: 0.2}, {Kind: faultproxy.Slow, Rate: 0.1}}
	const n = 600
	pattern := func(seed uint64) (string, faultproxy.Stats) {
		e := newEcho(t)
		p, err := faultproxy.New(faultproxy.Config{Target: e.srv.URL, Seed: seed, Rules: rules, SlowDelay: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c := &http.Client{}
		var b strings.Builder
		for range n {
			code, _, err := send(c, http.MethodGet, p.URL()+"/x", "")
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(fmt.Sprint(code / 100))
		}
		return b.String(), p.Stats()
	}
	a, sa := pattern(42)
	b, _ := pattern(42)
	c, _ := pattern(43)
	if a != b {
		t.Error("the same seed gave different faults")
	}
	if a == c {
		t.Error("different seeds gave the same faults")
	}
	// Binomial(600, 0.2): mean 120, sd 9.8; (600, 0.1): mean 60, sd 7.3.
	if u, s := sa.Faults[faultproxy.Unavailable], sa.Faults[faultproxy.Slow]; u < 80 || u > 160 || s < 30 || s > 90 {
		t.Errorf("stats %v: fault counts far from 20%% and 10%% of %d", sa, n)
	}
	if got := int64(strings.Count(a, "5")); got != sa.Faults[faultproxy.Unavailable] {
		t.Errorf("%d answers were 503, stats say %d", got, sa.Faults[faultproxy.Unavailable])
	}
}

// TestConcurrent sends requests from many goroutines: every request is
// accounted for exactly once.
func TestConcurrent(t *testing.T) {
	e := newEcho(t)
	p := newProxy(t, e.srv.URL, 7,
		faultproxy.Rule{Kind: faultproxy.Unavailable, Rate: 0.1},
		faultproxy.Rule{Kind: faultproxy.Reset, Rate: 0.1},
		faultproxy.Rule{Kind: faultproxy.LostAnswer, Rate: 0.1},
		faultproxy.Rule{Kind: faultproxy.Slow, Rate: 0.1},
	)
	c := client()
	var wg sync.WaitGroup
	var answered, failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, _, err := send(c, http.MethodPost, p.URL()+"/o", "body"); err != nil {
					failed.Add(1)
				} else {
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s := p.Stats()
	f := s.Faults
	if s.Requests != 200 || s.Forwarded != 200-f[faultproxy.Unavailable]-f[faultproxy.Reset] || e.hits.Load() != s.Forwarded {
		t.Errorf("stats %v, server hits %d: requests not accounted for", s, e.hits.Load())
	}
	if failed.Load() != f[faultproxy.Reset]+f[faultproxy.LostAnswer] {
		t.Errorf("%d requests failed at the client, stats %v", failed.Load(), s)
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []faultproxy.Config{
		{Target: "127.0.0.1:80"},
		{Target: "http://127.0.0.1:1", Rules: []faultproxy.Rule{{Kind: faultproxy.Slow, Rate: 1.5}}},
		{Target: "http://127.0.0.1:1", Rules: []faultproxy.Rule{{Kind: faultproxy.Kind(99), Rate: 0.5}}},
	} {
		if p, err := faultproxy.New(cfg); err == nil {
			p.Close()
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
