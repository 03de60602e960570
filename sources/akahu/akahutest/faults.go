package akahutest

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"
)

// FaultKind names a scripted failure.
type FaultKind int

// The fault kinds. Each takes the place of the normal answer of one request.
const (
	// RateLimit answers 429 with an error body; Fault.RetryAfter > 0 adds a
	// Retry-After header in whole seconds (rounded up).
	RateLimit FaultKind = iota + 1
	// ServerError answers Fault.Status (default 500; use 502 or 503 too).
	ServerError
	// Truncate sends the normal status and headers, including the full
	// Content-Length, then only the first half of the body and closes the
	// connection: the client sees an unexpected EOF.
	Truncate
	// Malformed answers 200 with a body that is not valid JSON.
	Malformed
	// Reset hijacks the connection and closes it (with a TCP RST) without
	// any response. Go's http.Transport may transparently retry a GET that
	// failed this way on a reused keep-alive connection, so the fault can be
	// consumed without the caller ever seeing it.
	Reset
	// Slow sleeps Fault.Delay (default 100ms) before answering normally, or
	// until the client gives up.
	Slow
)

var faultNames = map[FaultKind]string{
	RateLimit: "RateLimit", ServerError: "ServerError", Truncate: "Truncate",
	Malformed: "Malformed", Reset: "Reset", Slow: "Slow",
}

func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return "FaultKind(" + itoa(int(k)) + ")"
}

// Fault is a scripted failure, queued by InjectFault and consumed by matching
// requests in order of injection.
type Fault struct {
	Kind FaultKind
	// Count is how many requests the fault hits; 0 means 1.
	Count int
	// PathContains restricts the fault to requests whose path and query
	// contain it; empty matches every request.
	PathContains string
	// Status is the HTTP status of ServerError (default 500).
	Status int
	// RetryAfter adds a Retry-After header to RateLimit when positive.
	RetryAfter time.Duration
	// Delay is the sleep of Slow (default 100ms).
	Delay time.Duration
}

type faultState struct {
	mu         sync.Mutex
	queue      []Fault
	latency    time.Duration
	randomRate float64
	randomSlow time.Duration
	random     rng
	stats      Stats
	bucket     tokenBucket
}

// tokenBucket is the fake's API rate limit: rate tokens per second, at most
// burst of them saved; a request takes one or is refused. rate 0 disables it.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// take reports whether a request arriving at now is admitted.
func (b *tokenBucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Stats counts what the fake served.
type Stats struct {
	Requests   int64               // every request received
	ByKind     map[string]int64    // by endpoint kind: me, accounts, account, transactions, transaction (GET /transactions/{id}), account_transactions, pending, account_pending, refresh, unknown
	ByStatus   map[int]int64       // by status answered; 0 for connection resets
	Pages      int64               // settled transaction pages answered 200 (including empty ones and truncated ones)
	EmptyPages int64               // of which empty with a non-null next
	Items      int64               // settled transactions in those pages
	Faults     map[FaultKind]int64 // faults injected, scripted or random
	// RateAdmitted and RateRefused count the requests the rate limit (see
	// SetRateLimit) let through and answered 429, while it was set.
	RateAdmitted, RateRefused int64
}

// Clone returns a deep copy.
func (s Stats) Clone() Stats {
	s.ByKind = maps.Clone(s.ByKind)
	s.ByStatus = maps.Clone(s.ByStatus)
	s.Faults = maps.Clone(s.Faults)
	return s
}

// FaultsInjected is the total number of faults injected.
func (s Stats) FaultsInjected() int64 {
	var n int64
	for _, v := range s.Faults {
		n += v
	}
	return n
}

// SetLatency makes every later request sleep d before it is answered
// (0 disables). It models the per-page latency of the real API.
func (f *Fake) SetLatency(d time.Duration) {
	f.faults.mu.Lock()
	f.faults.latency = d
	f.faults.mu.Unlock()
}

// SetRateLimit makes the fake enforce an API rate limit shared by all
// requests, users and endpoints: a token bucket refilled at rate tokens per
// second holding at most burst (at least 1), starting full. A request arriving
// when the bucket is empty is answered 429 with an error body and no
// Retry-After header (the real API documents none), after the usual latency,
// and takes no token. rate 0 removes the limit. Stats count RateAdmitted and
// RateRefused. The limit is checked before scripted and random faults.
func (f *Fake) SetRateLimit(rate float64, burst int) {
	f.faults.mu.Lock()
	burst = max(burst, 1)
	f.faults.bucket = tokenBucket{rate: max(rate, 0), burst: float64(burst), tokens: float64(burst), last: time.Now()}
	f.faults.mu.Unlock()
}

// InjectFault queues a fault for the next matching request(s).
func (f *Fake) InjectFault(ft Fault) {
	if ft.Count <= 0 {
		ft.Count = 1
	}
	f.faults.mu.Lock()
	f.faults.queue = append(f.faults.queue, ft)
	f.faults.mu.Unlock()
}

// ClearFaults drops every queued fault and disables random faults.
func (f *Fake) ClearFaults() {
	f.faults.mu.Lock()
	f.faults.queue = nil
	f.faults.randomRate = 0
	f.faults.mu.Unlock()
}

// SetRandomFaults makes each request fail with probability rate (0 disables)
// with a kind drawn from RateLimit, ServerError (500/502/503), Truncate,
// Malformed, Reset and Slow (20ms), using a deterministic RNG seeded by seed.
// Scripted faults take precedence.
func (f *Fake) SetRandomFaults(rate float64, seed int64) {
	f.faults.mu.Lock()
	f.faults.randomRate = rate
	f.faults.random = rng{s: mix(uint64(seed), 0xfa017)}
	f.faults.mu.Unlock()
}

// SetRandomSlowDelay sets how long a random Slow fault sleeps (default 20ms), so a
// test can make it outlast the client's per-request timeout.
func (f *Fake) SetRandomSlowDelay(d time.Duration) {
	f.faults.mu.Lock()
	f.faults.randomSlow = d
	f.faults.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (f *Fake) Stats() Stats {
	f.faults.mu.Lock()
	defer f.faults.mu.Unlock()
	return f.faults.stats.Clone()
}

// ResetStats zeroes the counters.
func (f *Fake) ResetStats() {
	f.faults.mu.Lock()
	f.faults.stats = Stats{}
	f.faults.mu.Unlock()
}

// begin counts a request and picks the fault it suffers, if any: a refusal
// by the rate limit (limited) or a scripted or random fault.
func (f *Fake) begin(kind, pathQuery string) (latency time.Duration, limited bool, fault *Fault) {
	s := &f.faults
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	if s.stats.ByKind == nil {
		s.stats.ByKind = map[string]int64{}
	}
	s.stats.ByKind[kind]++
	if s.bucket.rate > 0 {
		if !s.bucket.take(time.Now()) {
			s.stats.RateRefused++
			return s.latency, true, nil
		}
		s.stats.RateAdmitted++
	}
	var ft *Fault
	for i := range s.queue {
		q := &s.queue[i]
		if strings.Contains(pathQuery, q.PathContains) {
			c := *q
			q.Count--
			if q.Count <= 0 {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
			}
			ft = &c
			break
		}
	}
	if ft == nil && s.randomRate > 0 && s.random.float() < s.randomRate {
		kinds := []FaultKind{RateLimit, ServerError, Truncate, Malformed, Reset, Slow}
		slow := s.randomSlow
		if slow <= 0 {
			slow = 20 * time.Millisecond
		}
		ft = &Fault{Kind: kinds[s.random.intn(len(kinds))], Delay: slow}
		ft.Status = []int{500, 502, 503}[s.random.intn(3)]
		if ft.Kind == RateLimit && s.random.intn(2) == 0 {
			ft.RetryAfter = time.Second // half the random 429s carry Retry-After: 1
		}
	}
	if ft != nil {
		if s.stats.Faults == nil {
			s.stats.Faults = map[FaultKind]int64{}
		}
		s.stats.Faults[ft.Kind]++
	}
	return s.latency, false, ft
}

func (f *Fake) countStatus(status int) {
	s := &f.faults
	s.mu.Lock()
	if s.stats.ByStatus == nil {
		s.stats.ByStatus = map[int]int64{}
	}
	s.stats.ByStatus[status]++
	s.mu.Unlock()
}

func (f *Fake) countPage(items int, empty bool) {
	s := &f.faults
	s.mu.Lock()
	s.stats.Pages++
	s.stats.Items += int64(items)
	if empty {
		s.stats.EmptyPages++
	}
	s.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
