package akahu

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors. Every error returned by a Client method for a failed API
// call is an [*Error] that unwraps (errors.Is) to exactly one of these.
var (
	// ErrAccessRevoked means the API answered 401: the user token is unknown,
	// invalid or revoked (the user withdrew the app's access). Never retried;
	// the caller should stop that user and report it.
	ErrAccessRevoked = errors.New("akahu: access revoked")

	// ErrForbidden means the API answered 403: the request was refused although
	// the user token may be valid. A missing or wrong app token (X-Akahu-Id)
	// gets it for every user; a permission the app or the user has not granted
	// gets it for that user. It is not a revocation: a caller must never take
	// it as the user withdrawing access. Never retried.
	ErrForbidden = errors.New("akahu: forbidden")

	// ErrNotFound means the API answered 404: unknown account id, transaction
	// id (deleted, replaced, never existed or another user's) or path.
	ErrNotFound = errors.New("akahu: not found")

	// ErrRateLimited means the API still answered 429 after all retries.
	ErrRateLimited = errors.New("akahu: rate limited")

	// ErrServer means the API still answered 5xx after all retries.
	ErrServer = errors.New("akahu: server error")

	// ErrMalformed means the response body could not be used after all
	// retries: truncated, too large, not JSON, the wrong shape, an item that
	// is not a JSON object, or a broken cursor (a loop, an empty string).
	ErrMalformed = errors.New("akahu: malformed response")

	// ErrBadRequest means the API refused the request for a reason retrying
	// cannot fix: any other 4xx, an unexpected 3xx, or a 2xx body with
	// "success": false. It is also returned, before any request is made, for
	// invalid arguments (an empty account id, an empty window).
	ErrBadRequest = errors.New("akahu: bad request")

	// ErrTransport means no usable HTTP response arrived after all retries:
	// connection failures and per-attempt timeouts.
	ErrTransport = errors.New("akahu: transport failure")

	// ErrConfig means [New] refused its [Config]: an empty token, a plain
	// http:// base URL for a host that is not loopback, a malformed URL or a
	// client that skips TLS verification.
	ErrConfig = errors.New("akahu: invalid configuration")
)

// Error describes one failed API call. Its text names the endpoint, the
// account and the window, never a token. It unwraps to the sentinel in Err
// and to the underlying cause, if any.
type Error struct {
	Endpoint  string // method and path, e.g. "GET /accounts/acc_x/transactions"
	AccountID string // empty for user-level endpoints
	Window    Window // zero unless the call was for a date range
	Status    int    // HTTP status of the last attempt; 0 if none arrived
	Message   string // the server's "message", if it sent one (tokens removed)
	Retries   int    // how many retries were made before giving up
	Err       error  // one of the package sentinels; nil only for cancellation
	Cause     error  // what went wrong underneath (network, decode, ctx); may be nil
}

// Error formats as
//
//	akahu: GET /accounts/acc_x/transactions (account acc_x, window A..B): 503 Service Unavailable after 6 retries: message
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("akahu: ")
	b.WriteString(e.Endpoint)
	switch {
	case e.AccountID != "" && !e.Window.IsZero():
		fmt.Fprintf(&b, " (account %s, window %s)", e.AccountID, e.Window)
	case e.AccountID != "":
		fmt.Fprintf(&b, " (account %s)", e.AccountID)
	case !e.Window.IsZero():
		fmt.Fprintf(&b, " (window %s)", e.Window)
	}
	b.WriteString(": ")
	n := b.Len()
	if e.Status > 0 {
		fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	} else if e.Err != nil {
		// No status: say which class of failure this is.
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "akahu: "))
	}
	if e.Retries > 0 {
		fmt.Fprintf(&b, " after %d retries", e.Retries)
	}
	sep := func() {
		if b.Len() > n {
			b.WriteString(": ")
		}
	}
	if e.Message != "" {
		sep()
		b.WriteString(e.Message)
	}
	if e.Cause != nil {
		sep()
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// scrubbedError carries an underlying error whose text has had secrets
// removed; errors.Is/As still reach the original.
type scrubbedError struct {
	msg string
	err error
}

func (s *scrubbedError) Error() string { return s.msg }
func (s *scrubbedError) Unwrap() error { return s.err }

// scrub wraps err so that its text contains none of the given secrets.
func scrub(err error, secrets ...Token) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := redact(msg, secrets...)
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// redact replaces every occurrence of a non-empty secret in s.
func redact(s string, secrets ...Token) string {
	for _, t := range secrets {
		if t != "" && strings.Contains(s, string(t)) {
			s = strings.ReplaceAll(s, string(t), redacted)
		}
	}
	return s
}
