package akahu

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRefresh checks POST /refresh: the method, path and both tokens, and that its
// failures are retried and mapped like every read's.
func TestRefresh(t *testing.T) {
	t.Parallel()
	const ok = `{"success":true}`
	tests := []struct {
		name     string
		steps    []http.HandlerFunc
		wantErr  error // nil: success
		wantReqs int
	}{
		{name: "acknowledged", steps: []http.HandlerFunc{status(200, ok)}, wantReqs: 1},
		{name: "5xx retried", steps: []http.HandlerFunc{status(503, ``), status(500, ``), status(200, ok)}, wantReqs: 3},
		{name: "429 retried", steps: []http.HandlerFunc{status(429, ``), status(200, ok)}, wantReqs: 2},
		{name: "5xx forever", steps: []http.HandlerFunc{status(503, ``)}, wantErr: ErrServer, wantReqs: 4},
		{name: "401 revoked, not retried", steps: []http.HandlerFunc{status(401, ``), status(200, ok)}, wantErr: ErrAccessRevoked, wantReqs: 1},
		{name: "403 forbidden, not retried", steps: []http.HandlerFunc{status(403, ``), status(200, ok)}, wantErr: ErrForbidden, wantReqs: 1},
		{name: "success false", steps: []http.HandlerFunc{status(200, `{"success":false,"message":"no"}`)}, wantErr: ErrBadRequest, wantReqs: 1},
		{name: "not JSON", steps: []http.HandlerFunc{status(200, `<html>`)}, wantErr: ErrMalformed, wantReqs: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tc := newTestClient(t, script(tt.steps...))
			err := tc.Refresh(context.Background(), testUser)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Refresh: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Refresh: %v, want %v", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), string(testUser)) || !strings.Contains(err.Error(), "POST /refresh")) {
				t.Errorf("error %q: must name POST /refresh and never the token", err)
			}
			reqs := tc.rec.requests()
			if len(reqs) != tt.wantReqs {
				t.Fatalf("%d requests, want %d", len(reqs), tt.wantReqs)
			}
			for _, r := range reqs {
				if r.Method != http.MethodPost || r.URL.Path != "/v1/refresh" {
					t.Errorf("request %s %s, want POST /v1/refresh", r.Method, r.URL.Path)
				}
				if r.Header.Get("Authorization") != "Bearer "+string(testUser) || r.Header.Get("X-Akahu-Id") != string(testApp) {
					t.Errorf("request without both tokens")
				}
			}
		})
	}
	if err := newTestClient(t, script(status(200, ok))).Refresh(context.Background(), ""); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty token: %v, want ErrBadRequest", err)
	}
}

// TestAccountsRefreshed checks that refreshed.transactions is typed, and that a value
// that is missing or not a timestamp leaves it zero without failing the listing.
func TestAccountsRefreshed(t *testing.T) {
	t.Parallel()
	body := `{"success":true,"items":[
		{"_id":"acc_1","refreshed":{"balance":"2026-01-02T03:04:05.000Z","transactions":"2026-01-02T03:04:05.678Z"}},
		{"_id":"acc_2","refreshed":{"balance":"2026-01-02T03:04:05.000Z"}},
		{"_id":"acc_3","refreshed":{"transactions":"yesterday"}},
		{"_id":"acc_4","refreshed":{"transactions":12}},
		{"_id":"acc_5"}]}`
	tc := newTestClient(t, script(status(200, body)))
	accs, err := tc.Accounts(context.Background(), testUser)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC), {}, {}, {}, {}}
	for i, a := range accs {
		if !a.TransactionsRefreshed.Equal(want[i]) {
			t.Errorf("%s: TransactionsRefreshed %v, want %v", a.ID, a.TransactionsRefreshed, want[i])
		}
	}
}
