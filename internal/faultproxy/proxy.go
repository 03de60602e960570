package faultproxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of injected fault.
type Kind int

const (
	// Unavailable answers 503 Service Unavailable without forwarding.
	Unavailable Kind = iota
	// Reset resets the client's connection without forwarding the request.
	Reset
	// LostAnswer forwards the request and waits for the whole answer, then
	// closes the client's connection without sending it.
	LostAnswer
	// Slow forwards the request and delays the answer by Config.SlowDelay.
	Slow

	numKinds
)

// Kinds lists every Kind, in order.
var Kinds = []Kind{Unavailable, Reset, LostAnswer, Slow}

// String names k for reports.
func (k Kind) String() string {
	switch k {
	case Unavailable:
		return "503"
	case Reset:
		return "reset"
	case LostAnswer:
		return "lost answer"
	case Slow:
		return "slow"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Rule injects a fault of Kind into a fraction Rate of the requests it
// matches. The rules of a Proxy are tried in order with one random draw per
// request, so the rates of the rules a request matches add up (at most one
// fault per request): with rules of rate 0.05 and 0.03, 5% of matching
// requests get the first fault and another 3% the second.
type Rule struct {
	Kind Kind
	// Rate is the probability, from 0 to 1, that a matching request gets
	// this fault.
	Rate float64
	// Methods restricts the rule to these request methods; empty matches
	// every method.
	Methods []string
	// Path restricts the rule to requests whose URL path contains it; empty
	// matches every path.
	Path string
	// Limit, if positive, is how many times the rule may fire; it matches
	// nothing afterwards.
	Limit int
}

func (r Rule) matches(req *http.Request) bool {
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, req.Method) {
		return false
	}
	return r.Path == "" || strings.Contains(req.URL.Path, r.Path)
}

// Config configures a Proxy.
type Config struct {
	// Target is the base URL of the server behind the proxy
	// ("http://127.0.0.1:8080"); request paths are appended to it.
	Target string
	// Seed seeds the random draws: requests sent one after another in the
	// same order get the same faults.
	Seed uint64
	// Rules are the faults to inject; none makes a transparent proxy.
	Rules []Rule
	// SlowDelay is how long a Slow fault holds the answer; 0 means 50ms.
	SlowDelay time.Duration
	// Transport carries requests to Target; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Stats counts what a Proxy did.
type Stats struct {
	// Requests is every request the proxy received.
	Requests int64
	// Forwarded is every request sent on to the target (including those
	// whose answer was then lost or delayed).
	Forwarded int64
	// Faults counts the injected faults of each kind.
	Faults map[Kind]int64
}

// String renders s as "N requests (M forwarded): K 503, ...".
func (s Stats) String() string {
	var parts []string
	for _, k := range Kinds {
		parts = append(parts, fmt.Sprintf("%d %s", s.Faults[k], k))
	}
	return fmt.Sprintf("%d requests (%d forwarded): %s", s.Requests, s.Forwarded, strings.Join(parts, ", "))
}

// Proxy is a fault-injecting reverse proxy listening on loopback.
type Proxy struct {
	target *url.URL
	tr     http.RoundTripper
	delay  time.Duration
	srv    *http.Server
	ln     net.Listener

	mu    sync.Mutex
	rng   *rand.Rand
	rules []Rule
	fired []int

	requests, forwarded atomic.Int64
	faults              [numKinds]atomic.Int64
}

// New starts a Proxy on a free loopback port in front of cfg.Target. Close
// stops it.
func New(cfg Config) (*Proxy, error) {
	target, err := url.Parse(cfg.Target)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an absolute URL (%v)", cfg.Target, err)
	}
	for _, r := range cfg.Rules {
		if r.Kind < 0 || r.Kind >= numKinds || r.Rate < 0 || r.Rate > 1 {
			return nil, fmt.Errorf("faultproxy: invalid rule %+v", r)
		}
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	delay := cfg.SlowDelay
	if delay <= 0 {
		delay = 50 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, tr: tr, delay: delay, ln: ln,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	p.setRules(cfg.Rules)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL ("http://127.0.0.1:port").
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Host is the proxy's "127.0.0.1:port".
func (p *Proxy) Host() string { return p.ln.Addr().String() }

// idleCloser is a RoundTripper that keeps idle connections (as *http.Transport
// does) and can close them; http.Client.CloseIdleConnections asks the same.
type idleCloser interface{ CloseIdleConnections() }

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	if c, ok := p.tr.(idleCloser); ok {
		c.CloseIdleConnections()
	}
	return err
}

// SetRules replaces the rules (and resets their Limit counts); nil makes the
// proxy transparent. The random sequence continues.
func (p *Proxy) SetRules(rules []Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setRules(rules)
}

func (p *Proxy) setRules(rules []Rule) {
	p.rules = slices.Clone(rules)
	p.fired = make([]int, len(rules))
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	s := Stats{Requests: p.requests.Load(), Forwarded: p.forwarded.Load(), Faults: map[Kind]int64{}}
	for _, k := range Kinds {
		s.Faults[k] = p.faults[k].Load()
	}
	return s
}

// decide draws the fault for req, if any.
func (p *Proxy) decide(req *http.Request) (Kind, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.rules) == 0 {
		return 0, false
	}
	u := p.rng.Float64()
	cum := 0.0
	for i, r := range p.rules {
		if !r.matches(req) || (r.Limit > 0 && p.fired[i] >= r.Limit) {
			continue
		}
		cum += r.Rate
		if u < cum {
			p.fired[i]++
			p.faults[r.Kind].Add(1)
			return r.Kind, true
		}
	}
	return 0, false
}

// hopHeaders are the connection-level headers a proxy does not pass on.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p.requests.Add(1)
	kind, fault := p.decide(req)
	if fault {
		switch kind {
		case Unavailable:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":503,"message":"injected by faultproxy","errors":[{"message":"injected by faultproxy","domain":"global","reason":"backendError"}]}}`)
			return
		case Reset:
			hangUp(w, true)
			return
		}
	}
	resp, body, err := p.forward(req)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	if fault {
		switch kind {
		case LostAnswer:
			hangUp(w, false)
			return
		case Slow:
			t := time.NewTimer(p.delay)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		}
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// forward sends req to the target and reads the whole answer.
func (p *Proxy) forward(req *http.Request) (*http.Response, []byte, error) {
	out := req.Clone(req.Context())
	u := *p.target
	u.Path = strings.TrimSuffix(p.target.Path, "/") + req.URL.Path
	u.RawPath = ""
	if req.URL.RawPath != "" {
		u.RawPath = strings.TrimSuffix(p.target.EscapedPath(), "/") + req.URL.RawPath
	}
	u.RawQuery = req.URL.RawQuery
	out.URL = &u
	out.Host = ""
	out.RequestURI = ""
	for _, k := range hopHeaders {
		out.Header.Del(k)
	}
	if req.ContentLength == 0 {
		out.Body = nil
	}
	p.forwarded.Add(1)
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read answer of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return resp, body, nil
}

// hangUp closes the client's connection without an answer: with reset, by a
// TCP RST (SO_LINGER 0), otherwise by an orderly close (the client reads EOF).
func hangUp(w http.ResponseWriter, reset bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
