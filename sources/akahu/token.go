package akahu

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Token is a secret: a user access token or an app token. Every way of
// printing it (fmt verbs, slog, JSON, text marshalling) yields "[REDACTED]";
// only string(t) reveals it, and this package does that only to build the
// request headers.
type Token string

// String returns "[REDACTED]".
func (Token) String() string { return redacted }

// GoString returns "[REDACTED]", so %#v does not leak either.
func (Token) GoString() string { return redacted }

// Format prints "[REDACTED]" for every verb, including %s, %q, %x and %v.
func (Token) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprint(f, `"`+redacted+`"`)
		return
	}
	fmt.Fprint(f, redacted)
}

// LogValue makes slog print "[REDACTED]".
func (Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON encodes the token as the JSON string "[REDACTED]".
func (Token) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText encodes the token as "[REDACTED]".
func (Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// IsZero reports whether the token is empty.
func (t Token) IsZero() bool { return t == "" }
