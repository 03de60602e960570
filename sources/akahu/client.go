package akahu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// maxErrorBody bounds how much of a non-2xx body is read for its message.
const maxErrorBody = 64 << 10

// maxMessage bounds the server message kept in an Error.
const maxMessage = 256

// Client talks to the Akahu API. It is safe for concurrent use; all its
// methods share one in-flight limit, one adaptive rate governor (see
// Config.RequestsPerSecond) and one set of Stats.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
	sem  chan struct{}
	gov  *governor
	log  *slog.Logger

	// sleep waits d or until ctx is done; jitter returns a value in [0,1);
	// now is the clock of the 429 retry budget. Tests replace them to make
	// retries instant and deterministic.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64
	now    func() time.Time

	decoders sync.Pool // *jsonscan.Scanner

	// bodies are the page buffers of finished walks, for the next walks: at most
	// MaxInFlight of them, none larger than maxPooledBody.
	bodiesMu sync.Mutex
	bodies   [][]byte

	requests, retries, rateLimited, serverErrors atomic.Int64
	transactions                                 atomic.Int64
}

// Stats are counters over the life of a Client, and the state of its rate
// governor. The achieved request rate is Requests over the caller's elapsed
// time.
type Stats struct {
	Requests     int64 // HTTP attempts sent
	Retries      int64 // attempts that were retries
	RateLimited  int64 // 429 responses seen
	ServerErrors int64 // 5xx responses seen
	// Transactions counts the settled transactions received in the pages of
	// Transactions and AllTransactions walks (a progress figure: a page retried
	// is not counted twice, a transaction served twice is).
	Transactions int64
	// RateBudget is Config.RequestsPerSecond (0: none given).
	RateBudget float64
	// RateLimit is the governor's current pace in requests per second; 0
	// while unlimited (no budget given and no 429 seen yet).
	RateLimit float64
	// Slowdowns counts the governor's cuts of its pace after a 429.
	Slowdowns int64
}

// New validates cfg, fills defaults and returns a Client. Its errors wrap
// ErrConfig.
func New(cfg Config) (*Client, error) {
	cfg, base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hc := *cfg.HTTPClient
	// Never follow redirects: a 3xx is an error, so the tokens are never sent
	// to a host the caller did not configure.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c := &Client{
		cfg:    cfg,
		base:   base,
		http:   &hc,
		sem:    make(chan struct{}, cfg.MaxInFlight),
		log:    cfg.Logger,
		gov:    newGovernor(cfg.RequestsPerSecond, cfg.MinRequestsPerSecond),
		sleep:  sleepCtx,
		jitter: rand.Float64,
		now:    time.Now,
	}
	return c, nil
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	pace, slowdowns := c.gov.stats()
	return Stats{
		Requests:     c.requests.Load(),
		Retries:      c.retries.Load(),
		RateLimited:  c.rateLimited.Load(),
		ServerErrors: c.serverErrors.Load(),
		Transactions: c.transactions.Load(),
		RateBudget:   c.cfg.RequestsPerSecond,
		RateLimit:    pace,
		Slowdowns:    slowdowns,
	}
}

// call describes one logical API request (retried as a unit).
type call struct {
	method    string // empty: GET
	endpoint  string // "GET /accounts/acc_x/transactions", for errors and logs
	path      string // escaped path below the base URL
	query     url.Values
	user      Token
	accountID string
	window    Window
	want      want
}

type want int

const (
	wantItems want = iota // a list body: "items" must be present
	wantItem              // a single-object body: "item" must be present
	wantNone              // an acknowledgement: {"success":true} is enough
)

func (c *call) errorf(class error, status, retries int, msg string, cause error) *Error {
	return &Error{
		Endpoint:  c.endpoint,
		AccountID: c.accountID,
		Window:    c.window,
		Status:    status,
		Message:   msg,
		Retries:   retries,
		Err:       class,
		Cause:     cause,
	}
}

// outcome is the result of one attempt.
type outcome struct {
	status     int
	class      error // nil on success
	cause      error
	message    string
	retryable  bool
	retryAfter time.Duration
	hasAfter   bool
	canceled   bool // the caller's ctx ended: stop, do not retry
}

// do performs c with retries. On success env holds the decoded body, whose
// items alias *buf; *buf is reused (grown) across calls.
func (c *Client) do(ctx context.Context, cl *call, buf *[]byte, env *envelope) error {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + cl.path // cl.path is already escaped
	u.Path, _ = url.PathUnescape(u.RawPath)
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	target := u.String()
	// 429s have their own budget (time, not count) so that a request is not
	// failed while the governor is still finding the rate limit.
	var failures, limited int
	var firstLimited time.Time
	for attempt := 0; ; attempt++ {
		o := c.attempt(ctx, cl, target, attempt, buf, env)
		if o.class == nil && !o.canceled {
			return nil
		}
		if o.canceled {
			return cl.errorf(nil, o.status, attempt, o.message, o.cause)
		}
		if !o.retryable || c.cfg.MaxRetries == 0 {
			return cl.errorf(o.class, o.status, attempt, o.message, o.cause)
		}
		var wait time.Duration
		if o.status == http.StatusTooManyRequests && c.cfg.MaxRateLimitWait > 0 {
			now := c.now()
			if limited == 0 {
				firstLimited = now
			}
			wait = c.backoff(limited)
			limited++
			if o.hasAfter {
				wait = min(o.retryAfter, c.cfg.MaxRetryAfter)
			}
			if now.Sub(firstLimited)+wait > c.cfg.MaxRateLimitWait {
				return cl.errorf(o.class, o.status, attempt, o.message, o.cause)
			}
		} else {
			if failures >= c.cfg.MaxRetries {
				return cl.errorf(o.class, o.status, attempt, o.message, o.cause)
			}
			wait = c.backoff(failures)
			failures++
			if o.hasAfter {
				wait = min(o.retryAfter, c.cfg.MaxRetryAfter)
			}
		}
		c.retries.Add(1)
		c.log.LogAttrs(ctx, slog.LevelWarn, "akahu: retrying",
			slog.String("endpoint", cl.endpoint),
			slog.String("account", cl.accountID),
			slog.String("window", windowAttr(cl.window)),
			slog.Int("status", o.status),
			slog.Int("attempt", attempt+1),
			slog.Duration("wait", wait),
			slog.String("error", cl.errorf(o.class, o.status, 0, o.message, o.cause).Error()),
		)
		if err := c.sleep(ctx, wait); err != nil {
			return cl.errorf(nil, o.status, attempt, o.message, err)
		}
	}
}

// attempt sends one request and reads and decodes its body.
func (c *Client) attempt(ctx context.Context, cl *call, target string, attempt int, buf *[]byte, env *envelope) (o outcome) {
	secrets := []Token{cl.user, c.cfg.AppToken}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return outcome{canceled: true, cause: context.Cause(ctx)}
	}
	defer func() { <-c.sem }()
	epoch, err := c.gov.wait(ctx)
	if err != nil {
		return outcome{canceled: true, cause: err}
	}

	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	method := cl.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(actx, method, target, nil)
	if err != nil {
		return outcome{class: ErrBadRequest, cause: scrub(fmt.Errorf("building request: %w", err), secrets...)}
	}
	req.Header.Set("Authorization", "Bearer "+string(cl.user))
	req.Header.Set("X-Akahu-Id", string(c.cfg.AppToken))
	req.Header.Set("Accept", "application/json")

	c.requests.Add(1)
	start := time.Now()
	var n int
	defer func() {
		c.log.LogAttrs(ctx, slog.LevelDebug, "akahu: request",
			slog.String("endpoint", cl.endpoint),
			slog.String("account", cl.accountID),
			slog.Int("status", o.status),
			slog.Int("attempt", attempt+1),
			slog.Duration("duration", time.Since(start)),
			slog.Int("bytes", n),
		)
	}()

	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{canceled: true, cause: context.Cause(ctx)}
		}
		return outcome{class: ErrTransport, retryable: true, cause: scrub(err, secrets...)}
	}
	defer resp.Body.Close()
	o.status = resp.StatusCode
	c.gov.observe(c.gov.now(), epoch, resp.StatusCode == http.StatusTooManyRequests)

	limit := c.cfg.MaxBodyBytes
	if resp.StatusCode/100 != 2 {
		limit = maxErrorBody
	}
	body, rerr := readBody(resp.Body, (*buf)[:0], limit)
	n = len(body)
	if resp.StatusCode/100 == 2 {
		*buf = body
	}

	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		c.rateLimited.Add(1)
		o.class, o.retryable = ErrRateLimited, true
		o.retryAfter, o.hasAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case code >= 500:
		c.serverErrors.Add(1)
		o.class, o.retryable = ErrServer, true
		o.retryAfter, o.hasAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()) // e.g. 503 maintenance
	case code == http.StatusUnauthorized:
		o.class = ErrAccessRevoked
	case code == http.StatusForbidden:
		o.class = ErrForbidden
	case code == http.StatusNotFound:
		o.class = ErrNotFound
	case code >= 300:
		o.class = ErrBadRequest
	case code < 200:
		o.class, o.retryable = ErrTransport, true
	}
	if o.class != nil {
		o.message = c.errorMessage(body, secrets)
		return o
	}

	// 2xx: the body must be complete, bounded and well formed.
	if rerr != nil {
		if ctx.Err() != nil {
			return outcome{status: o.status, canceled: true, cause: context.Cause(ctx)}
		}
		if actx.Err() != nil {
			return outcome{status: o.status, class: ErrTransport, retryable: true, cause: scrub(fmt.Errorf("reading body: %w", rerr), secrets...)}
		}
		o.class, o.retryable = ErrMalformed, !errors.Is(rerr, errBodyTooLarge)
		o.cause = scrub(fmt.Errorf("reading body: %w", rerr), secrets...)
		return o
	}
	d := c.getDecoder()
	err = decodeEnvelope(d, body, env)
	c.putDecoder(d)
	if err != nil {
		o.class, o.retryable = ErrMalformed, true
		o.cause = scrub(fmt.Errorf("decoding body: %w", err), secrets...)
		return o
	}
	if env.hasSuccess && !env.success {
		o.class = ErrBadRequest
		o.message = clip(redact(env.message, secrets...))
		if o.message == "" {
			o.message = `"success": false`
		}
		return o
	}
	switch {
	case cl.want == wantItems && !env.hasItems:
		o.class, o.retryable, o.cause = ErrMalformed, true, errors.New(`decoding body: no "items" array`)
	case cl.want == wantItem && env.item == nil:
		o.class, o.retryable, o.cause = ErrMalformed, true, errors.New(`decoding body: no "item" object`)
	}
	return o
}

// putDecoder returns d to the pool without keeping the body it last read.
func (c *Client) putDecoder(d *jsonscan.Scanner) {
	d.Reset(nil, jsonscan.Options{})
	c.decoders.Put(d)
}

func (c *Client) getDecoder() *jsonscan.Scanner {
	if d, ok := c.decoders.Get().(*jsonscan.Scanner); ok {
		return d
	}
	return new(jsonscan.Scanner)
}

// errorMessage extracts "message" from an error body, best effort.
func (c *Client) errorMessage(body []byte, secrets []Token) string {
	if len(body) == 0 {
		return ""
	}
	var env envelope
	d := c.getDecoder()
	err := decodeEnvelope(d, body, &env)
	c.putDecoder(d)
	if err != nil {
		return ""
	}
	return clip(redact(env.message, secrets...))
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage], "") + "…"
}

// maxPooledBody is the largest page buffer a finished walk hands to the next one.
const maxPooledBody = 1 << 20

// takeBody returns a page buffer of a finished walk, or nil.
func (c *Client) takeBody() []byte {
	c.bodiesMu.Lock()
	defer c.bodiesMu.Unlock()
	n := len(c.bodies)
	if n == 0 {
		return nil
	}
	b := c.bodies[n-1]
	c.bodies[n-1] = nil
	c.bodies = c.bodies[:n-1]
	return b
}

// giveBody keeps buf, whose walk is over, for a later walk.
func (c *Client) giveBody(buf []byte) {
	if cap(buf) == 0 || cap(buf) > maxPooledBody {
		return
	}
	c.bodiesMu.Lock()
	defer c.bodiesMu.Unlock()
	if len(c.bodies) < c.cfg.MaxInFlight {
		c.bodies = append(c.bodies, buf[:0])
	}
}

// errBodyTooLarge reports a body over MaxBodyBytes.
var errBodyTooLarge = errors.New("body exceeds MaxBodyBytes")

// readBody reads r into buf (reusing its capacity), failing with
// errBodyTooLarge beyond limit bytes.
func readBody(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	lr := io.LimitedReader{R: r, N: limit + 1}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf[:limit], errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// backoff returns the delay before retry number attempt+1: BaseBackoff
// doubled per attempt, times a jitter in [0.75, 1.25), capped by MaxBackoff.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MaxBackoff
	if attempt < 40 {
		if b := c.cfg.BaseBackoff << attempt; b > 0 && b < d {
			d = b
		}
	}
	j := 0.75 + 0.5*c.jitter()
	return min(time.Duration(float64(d)*j), c.cfg.MaxBackoff)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func windowAttr(w Window) string {
	if w.IsZero() {
		return ""
	}
	return w.String()
}
