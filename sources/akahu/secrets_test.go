package akahu

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTokenNeverPrints(t *testing.T) {
	t.Parallel()
	tok := Token("user_token_VERYSECRET")
	holder := struct {
		User Token
		Ptr  *Token
	}{tok, &tok}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	logger.Info("x", "token", tok, "holder", holder)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "token", tok)
	js, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := tok.MarshalText()
	outputs := map[string]string{
		"Sprint":     fmt.Sprint(tok),
		"%v":         fmt.Sprintf("%v", tok),
		"%s":         fmt.Sprintf("%s", tok),
		"%q":         fmt.Sprintf("%q", tok),
		"%x":         fmt.Sprintf("%x", tok),
		"%#v":        fmt.Sprintf("%#v", tok),
		"%+v":        fmt.Sprintf("%+v", holder),
		"%#v struct": fmt.Sprintf("%#v", holder),
		"%v ptr":     fmt.Sprintf("%v", *holder.Ptr),
		"String":     tok.String(),
		"GoString":   tok.GoString(),
		"json":       string(js),
		"text":       string(txt),
		"slog":       logBuf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "VERYSECRET") || strings.Contains(out, "56455259") /* hex */ {
			t.Errorf("%s leaks the token: %s", name, out)
		}
		if !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%s = %q, want [REDACTED]", name, out)
		}
	}
	if string(tok) != "user_token_VERYSECRET" {
		t.Error("string conversion must still give the value for headers")
	}
}

// TestSecretsNeverInErrorsOrLogs drives every failure path with a server that
// echoes the tokens back in messages and checks neither errors nor a
// Debug-level log ever contain them.
func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			msg := "bad token " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + " for app " + r.Header.Get("X-Akahu-Id")
			b, _ := json.Marshal(map[string]any{"success": false, "message": msg})
			status(code, string(b))(w, r)
		}
	}
	echoMalformed := func(w http.ResponseWriter, r *http.Request) {
		status(200, `{"success":true,"items":[{"_id":"`+r.Header.Get("X-Akahu-Id")+`"} `+r.Header.Get("Authorization")+`]}`)(w, r)
	}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cases := []http.HandlerFunc{echo(401), echo(403), echo(400), echo(404), echo(429), echo(503), echo(200), echoMalformed, hangup}
	for i, h := range cases {
		tc := newTestClient(t, h, func(c *Config) { c.Logger = logger })
		var errs []error
		_, err := tc.Me(context.Background(), testUser)
		errs = append(errs, err)
		_, err = tc.Accounts(context.Background(), testUser)
		errs = append(errs, err)
		err = tc.Transactions(context.Background(), testUser, "acc_1", LocalDates(time.Now(), time.Now(), nil), func(Page) error { return nil })
		errs = append(errs, err)
		for _, err := range errs {
			if err == nil {
				t.Fatalf("case %d: no error", i)
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(text, "SECRET") {
					t.Errorf("case %d: error leaks a token: %s", i, text)
				}
			}
			var e *Error
			if errors.As(err, &e) && strings.Contains(e.Message, "SECRET") {
				t.Errorf("case %d: Message leaks a token: %s", i, e.Message)
			}
		}
	}
	out := logBuf.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "level=WARN") {
		t.Fatalf("expected debug and warn lines, got:\n%s", out)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("log output leaks a token:\n%s", out)
	}
	if !strings.Contains(out, "bad token [REDACTED] for app [REDACTED]") {
		t.Errorf("echoed message not scrubbed as expected:\n%s", out)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // refused by New
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means accepted
	}{
		{"default base URL", Config{AppToken: testApp}, ""},
		{"https anywhere", Config{AppToken: testApp, BaseURL: "https://akahu.example/v1/"}, ""},
		{"http 127.0.0.1", Config{AppToken: testApp, BaseURL: "http://127.0.0.1:8080/v1"}, ""},
		{"http 127.5.6.7", Config{AppToken: testApp, BaseURL: "http://127.5.6.7/v1"}, ""},
		{"http ::1", Config{AppToken: testApp, BaseURL: "http://[::1]:9/v1"}, ""},
		{"http localhost", Config{AppToken: testApp, BaseURL: "http://LocalHost:9/v1"}, ""},
		{"http public host", Config{AppToken: testApp, BaseURL: "http://api.akahu.io/v1"}, "plain http://"},
		{"http private IP", Config{AppToken: testApp, BaseURL: "http://10.0.0.1/v1"}, "plain http://"},
		{"http localhost lookalike", Config{AppToken: testApp, BaseURL: "http://localhost.evil.example/v1"}, "plain http://"},
		{"other scheme", Config{AppToken: testApp, BaseURL: "ftp://127.0.0.1/v1"}, "scheme must be https"},
		{"no host", Config{AppToken: testApp, BaseURL: "/v1"}, "no host"},
		{"credentials in URL", Config{AppToken: testApp, BaseURL: "https://me:SECRETpw@akahu.example/v1"}, "must not contain credentials"},
		{"query in URL", Config{AppToken: testApp, BaseURL: "https://akahu.example/v1?x=1"}, "query"},
		{"empty app token", Config{}, "AppToken is empty"},
		{"newline in app token", Config{AppToken: "app\r\nX-Evil: 1"}, "line break"},
		{"TLS verification off", Config{AppToken: testApp, HTTPClient: insecure}, "skips TLS verification"},
		{"negative rate", Config{AppToken: testApp, RequestsPerSecond: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want ErrConfig containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("config error leaks a secret: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := New(Config{AppToken: testApp})
	if err != nil {
		t.Fatal(err)
	}
	got := c.cfg
	if got.BaseURL != DefaultBaseURL || got.MaxInFlight != DefaultMaxInFlight || got.MaxRetries != DefaultMaxRetries ||
		got.BaseBackoff != DefaultBaseBackoff || got.MaxBackoff != DefaultMaxBackoff || got.RequestTimeout != DefaultRequestTimeout ||
		got.MaxBodyBytes != DefaultMaxBodyBytes || got.MaxRetryAfter != DefaultMaxRetryAfter || got.Logger == nil ||
		got.MaxRateLimitWait != DefaultMaxRateLimitWait {
		t.Errorf("defaults not applied: %+v", got)
	}
	if st := c.Stats(); cap(c.sem) != DefaultMaxInFlight || st.RateLimit != 0 || st.RateBudget != 0 {
		t.Errorf("sem cap %d, pace %v budget %v: want unlimited", cap(c.sem), st.RateLimit, st.RateBudget)
	}
	countLimited, _ := New(Config{AppToken: testApp, MaxRateLimitWait: -1})
	if countLimited.cfg.MaxRateLimitWait != 0 {
		t.Errorf("MaxRateLimitWait -1 → %v, want 0 (429s count against MaxRetries)", countLimited.cfg.MaxRateLimitWait)
	}
	noRetry, _ := New(Config{AppToken: testApp, MaxRetries: -1})
	if noRetry.cfg.MaxRetries != 0 {
		t.Errorf("MaxRetries -1 → %d, want 0", noRetry.cfg.MaxRetries)
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	w := Window{Start: time.Date(2024, 1, 1, 10, 59, 59, 999e6, time.UTC), End: time.Date(2024, 2, 1, 10, 59, 59, 999e6, time.UTC)}
	cause := errors.New("connection reset")
	tests := []struct {
		e    *Error
		want string
		is   []error
	}{
		{&Error{Endpoint: "GET /accounts/acc_x/transactions", AccountID: "acc_x", Window: w, Status: 503, Retries: 6, Message: "try later", Err: ErrServer},
			"akahu: GET /accounts/acc_x/transactions (account acc_x, window 2024-01-01T10:59:59.999Z..2024-02-01T10:59:59.999Z): 503 Service Unavailable after 6 retries: try later",
			[]error{ErrServer}},
		{&Error{Endpoint: "GET /me", Status: 401, Err: ErrAccessRevoked}, "akahu: GET /me: 401 Unauthorized", []error{ErrAccessRevoked}},
		{&Error{Endpoint: "GET /me", Status: 403, Err: ErrForbidden}, "akahu: GET /me: 403 Forbidden", []error{ErrForbidden}},
		{&Error{Endpoint: "GET /accounts/acc_1/transactions/pending", AccountID: "acc_1", Retries: 2, Err: ErrTransport, Cause: cause},
			"akahu: GET /accounts/acc_1/transactions/pending (account acc_1): transport failure after 2 retries: connection reset",
			[]error{ErrTransport, cause}},
		{&Error{Endpoint: "GET /me", Cause: context.Canceled}, "akahu: GET /me: context canceled", []error{context.Canceled}},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() =\n %q\nwant\n %q", got, tt.want)
		}
		for _, target := range tt.is {
			if !errors.Is(tt.e, target) {
				t.Errorf("%q does not unwrap to %v", tt.e, target)
			}
		}
	}
}
