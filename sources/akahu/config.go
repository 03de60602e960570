package akahu

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults used by New for zero Config fields.
const (
	DefaultBaseURL        = "https://api.akahu.io/v1"
	DefaultMaxInFlight    = 8
	DefaultMaxRetries     = 6
	DefaultBaseBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff     = 20 * time.Second
	DefaultMaxRetryAfter  = time.Minute
	DefaultRequestTimeout = 60 * time.Second
	DefaultMaxBodyBytes   = 64 << 20 // 64 MiB
)

// Defaults of the rate governor (see Config.RequestsPerSecond).
const (
	// DefaultMaxRateLimitWait is how long one request keeps retrying 429s.
	DefaultMaxRateLimitWait = 10 * time.Minute
	// DefaultMinRequestsPerSecond is the lowest pace 429s slow the Client to.
	DefaultMinRequestsPerSecond = 1.0
)

// Config configures a Client. Zero fields take the Default* values.
type Config struct {
	// BaseURL is the API root including /v1. Plain http:// is refused unless
	// the host is loopback (127.0.0.0/8, ::1, localhost).
	BaseURL string
	// AppToken is sent as X-Akahu-Id on every request. Required.
	AppToken Token
	// HTTPClient performs the requests; nil means a client with a clone of
	// http.DefaultTransport. The Client never follows redirects (so tokens
	// are never forwarded to another host) and refuses a transport that
	// skips TLS verification.
	HTTPClient *http.Client
	// MaxInFlight bounds the requests in flight across the whole Client.
	MaxInFlight int
	// RequestsPerSecond is the request rate budget of the whole Client, a
	// ceiling; 0 means none. Akahu publishes no rate limit, so the Client
	// finds it: all requests go through one governor that paces them evenly
	// (burst 1) and adapts its pace to 429 answers (AIMD, with a cubic climb
	// as in TCP CUBIC):
	//
	//   - It starts at RequestsPerSecond, or unlimited when that is 0.
	//   - A 429 to a request sent at the current pace cuts the pace, for all
	//     requests, to 0.9 × the rate found too high, and holds every request
	//     off for two intervals at the new pace (at most 200ms). The rate found
	//     too high is the pace at the time, unless the server admitted less
	//     than the pace set by the previous cut since that cut: then the pace
	//     was too high all along, and the rate found too high is what it
	//     admitted (but at least half the pace), so a far too high pace is
	//     corrected in a few cuts. A 429 to a request sent before the last
	//     cut is already accounted for by it.
	//   - When unlimited, the first 429 makes the governor limited. Its first
	//     guess of the rate found too high is what was sent in the last second;
	//     from 0.9 × that guess the pace rises by 2 requests/s per admitted
	//     answer (doubling about every 0.35s while it holds requests back)
	//     until the next 429.
	//   - Otherwise, after a cut from a rate R, the pace climbs back from 0.9R
	//     to R in K = 2s (or the time R takes to send 20 requests, if longer),
	//     concave (fast, then slowing near R), and then beyond R ever faster
	//     (convex), probing for a higher limit: R × (1 + 0.1 × ((t − K)/K)³)
	//     at t after the cut.
	//   - The pace never exceeds RequestsPerSecond (when given), nor climbs
	//     above 2 × the rate actually sent in the last second while it holds
	//     no request back, nor drops below MinRequestsPerSecond.
	//
	// Against a token-bucket limit this settles within a few seconds, then
	// meets one 429 every two to three seconds: about 1-2% of requests, at
	// 95-100% of the limit. Stats report the budget, the pace and the cuts.
	RequestsPerSecond float64
	// MinRequestsPerSecond is the lowest pace 429s slow the Client to
	// (default 1). Raise it when the limit is known to be at least that, or
	// when 429s are not a rate signal (as in tests injecting them at random).
	MinRequestsPerSecond float64
	// MaxRetries is how many times a retryable failure other than a 429 is
	// retried; a negative value disables retries, 429s included.
	MaxRetries int
	// MaxRateLimitWait bounds the retries of 429s by time rather than count:
	// a request answered 429 is retried (with the backoff below, or as the
	// server's Retry-After says) until this long has passed since its first
	// 429; 429s do not use up MaxRetries. A negative value counts 429s
	// against MaxRetries like other failures.
	MaxRateLimitWait time.Duration
	// BaseBackoff is the first retry delay; it doubles per retry, with
	// jitter ×0.75–1.25, and is capped by MaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured.
	MaxRetryAfter time.Duration
	// RequestTimeout bounds each attempt, body included.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a response body; a larger body is ErrMalformed.
	MaxBodyBytes int64
	// Logger receives Debug lines per request and Warn lines per retry;
	// nil discards them.
	Logger *slog.Logger
}

// withDefaults validates cfg and fills zero fields.
func (cfg Config) withDefaults() (Config, *url.URL, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.AppToken == "" {
		return cfg, nil, fmt.Errorf("%w: AppToken is empty (set the app token, X-Akahu-Id)", ErrConfig)
	}
	if strings.ContainsAny(string(cfg.AppToken), "\r\n") {
		return cfg, nil, fmt.Errorf("%w: AppToken contains a line break", ErrConfig)
	}
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return cfg, nil, err
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Keep a connection per request in flight: the default of 2 idle connections
		// per host makes 8 concurrent walks re-dial (a TLS handshake each) constantly.
		tr.MaxIdleConnsPerHost = cfg.MaxInFlight
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	if insecureTransport(cfg.HTTPClient.Transport) {
		return cfg, nil, fmt.Errorf("%w: HTTPClient skips TLS verification (InsecureSkipVerify); refusing to send tokens", ErrConfig)
	}
	if cfg.RequestsPerSecond < 0 {
		return cfg, nil, fmt.Errorf("%w: RequestsPerSecond %v is negative", ErrConfig, cfg.RequestsPerSecond)
	}
	if cfg.MinRequestsPerSecond < 0 {
		return cfg, nil, fmt.Errorf("%w: MinRequestsPerSecond %v is negative", ErrConfig, cfg.MinRequestsPerSecond)
	}
	if cfg.MinRequestsPerSecond == 0 {
		cfg.MinRequestsPerSecond = DefaultMinRequestsPerSecond
	}
	if cfg.RequestsPerSecond > 0 && cfg.MinRequestsPerSecond > cfg.RequestsPerSecond {
		cfg.MinRequestsPerSecond = cfg.RequestsPerSecond
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	switch {
	case cfg.MaxRateLimitWait == 0:
		cfg.MaxRateLimitWait = DefaultMaxRateLimitWait
	case cfg.MaxRateLimitWait < 0:
		cfg.MaxRateLimitWait = 0
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, base, nil
}

// parseBaseURL accepts https:// anywhere and http:// only for loopback.
// Its errors never echo user info that might hold a secret.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL is not a URL", ErrConfig)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: BaseURL must not contain credentials", ErrConfig)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: BaseURL %q has no host", ErrConfig, u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: BaseURL %q must not have a query or fragment", ErrConfig, u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: BaseURL %q uses plain http:// for a non-loopback host; use https://", ErrConfig, u.Redacted())
		}
	default:
		return nil, fmt.Errorf("%w: BaseURL %q: scheme must be https", ErrConfig, u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func insecureTransport(rt http.RoundTripper) bool {
	t, ok := rt.(*http.Transport)
	if !ok || t == nil {
		return false
	}
	return t.TLSClientConfig != nil && t.TLSClientConfig.InsecureSkipVerify
}
