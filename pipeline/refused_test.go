package pipeline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// scripted wraps the client to give a run tokens the fake does not have: an alias
// is sent as another token (two tokens of one user), meErr answers /me for a token
// without a request, noAccounts lists no accounts for a token, and onTx runs
// before each transactions walk (to revoke or forbid a user in the middle of a run).
type scripted struct {
	*akahu.Client
	alias      map[akahu.Token]akahu.Token
	meErr      map[akahu.Token]error
	noAccounts map[akahu.Token]bool
	onTx       func(akahu.Token)
}

func (s *scripted) wire(t akahu.Token) akahu.Token {
	if a, ok := s.alias[t]; ok {
		return a
	}
	return t
}

func (s *scripted) Me(ctx context.Context, t akahu.Token) (akahu.Me, error) {
	if err := s.meErr[t]; err != nil {
		return akahu.Me{}, err
	}
	return s.Client.Me(ctx, s.wire(t))
}

func (s *scripted) Accounts(ctx context.Context, t akahu.Token) ([]akahu.Account, error) {
	// A token the state names skips /me: its discovery error comes here.
	if err := s.meErr[t]; err != nil {
		return nil, err
	}
	if s.noAccounts[t] {
		return nil, nil
	}
	return s.Client.Accounts(ctx, s.wire(t))
}

func (s *scripted) Transactions(ctx context.Context, t akahu.Token, acct string, w akahu.Window, fn func(akahu.Page) error) error {
	if s.onTx != nil {
		s.onTx(t)
	}
	return s.Client.Transactions(ctx, s.wire(t), acct, w, fn)
}

func (s *scripted) AllTransactions(ctx context.Context, t akahu.Token, w akahu.Window, fn func(akahu.Page) error) error {
	if s.onTx != nil {
		s.onTx(t)
	}
	return s.Client.AllTransactions(ctx, s.wire(t), w, fn)
}

func (s *scripted) AllPending(ctx context.Context, t akahu.Token) ([]json.RawMessage, error) {
	return s.Client.AllPending(ctx, s.wire(t))
}

func (s *scripted) Transaction(ctx context.Context, t akahu.Token, id string) (json.RawMessage, error) {
	return s.Client.Transaction(ctx, s.wire(t), id)
}

func (s *scripted) Pending(ctx context.Context, t akahu.Token, acct string) ([]json.RawMessage, error) {
	return s.Client.Pending(ctx, s.wire(t), acct)
}

// threeUsers is a population of three users with two accounts each.
func threeUsers() akahutest.Options {
	o := smallPopulation()
	o.Users, o.AccountsPerUser = 3, 2
	return o
}

// rowsPerUser counts the transactions rows of each user id.
func rowsPerUser(t *testing.T, b bucket.Bucket) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range readRows(t, b, "transactions/") {
		out[r.User]++
	}
	return out
}

// datasetState hashes every data object and manifest.
func datasetState(t *testing.T, b bucket.Bucket) map[string]string {
	t.Helper()
	return snapshot(t, b, "transactions/", "deletions/", "pending/", "accounts/", "_manifests/")
}

// editLatestManifest turns the dataset into one an older tool left (no state objects;
// the newest manifest lists every user with its token fingerprint) and rewrites the
// users of that manifest (as an older tool, or a fingerprint collision, would have
// left them).
func editLatestManifest(t *testing.T, b bucket.Bucket, edit func(users []map[string]any) []map[string]any) {
	t.Helper()
	ctx := context.Background()
	var known []map[string]any
	for _, a := range mustList(t, b, "_state/") {
		if strings.HasSuffix(a.Name, ".jsonl.gz") {
			data, _, err := b.Get(ctx, a.Name)
			if err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			lines, _ := io.ReadAll(zr)
			for _, l := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
				var e struct {
					User map[string]any `json:"user"`
				}
				if err := json.Unmarshal(l, &e); err != nil {
					t.Fatal(err)
				}
				if e.User != nil {
					e.User["status"] = "ok"
					known = append(known, e.User)
				}
			}
		}
		if err := b.Delete(ctx, a.Name, bucket.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	list := mustList(t, b, "_manifests/")
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	name := names[len(names)-1]
	data, attrs, err := b.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	users := known
	listed, _ := doc["users"].([]any)
	for _, u := range listed {
		users = append(users, u.(map[string]any))
	}
	doc["users"] = edit(users)
	out, _ := json.Marshal(doc)
	if _, err := b.Put(ctx, name, out, bucket.Condition{GenerationMatch: attrs.Generation}); err != nil {
		t.Fatal(err)
	}
}

func fingerprintOf(t *testing.T, users []map[string]any, userID string) string {
	t.Helper()
	for _, u := range users {
		if u["user_id"] == userID {
			return u["token_fingerprint"].(string)
		}
	}
	t.Fatalf("no manifest entry for %s", userID)
	return ""
}

// TestWrongAppTokenPurgesNothing is the incident: a dataset holds several users'
// data, and a run with --purge-revoked uses a rotated app token. Akahu answers 403 to
// every user. The run must fail before writing anything, name the app token, and
// purge nothing (it used to match every user to its earlier data and purge it all).
func TestWrongAppTokenPurgesNothing(t *testing.T) {
	for _, dry := range []bool{false, true} {
		name := "run"
		if dry {
			name = "dry run"
		}
		t.Run(name, func(t *testing.T) {
			b := newLocal(t)
			h := newHarness(t, b, threeUsers())
			h.run(h.opts.From, h.opts.To)
			before := datasetState(t, b)
			perUser := rowsPerUser(t, b)
			if len(perUser) != 3 {
				t.Fatalf("baseline has rows of %d users, want 3", len(perUser))
			}
			wrong, err := akahu.New(akahu.Config{BaseURL: h.srv.URL, AppToken: "app_token_rotated_away", HTTPClient: h.srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Source = wrong
			cfg.PurgeRevoked = true
			cfg.DryRun = dry
			var plan strings.Builder
			cfg.PlanOut = &plan
			m, err := pipeline.Run(context.Background(), cfg)
			if m != nil || err == nil {
				t.Fatalf("run with a wrong app token: manifest %v, err %v; want no manifest and an error", m != nil, err)
			}
			if !strings.Contains(err.Error(), "app token") || !strings.Contains(err.Error(), "403") {
				t.Errorf("error %q does not say the app token was refused (403)", err)
			}
			if !errors.Is(err, pipeline.ErrAppTokenRefused) || errors.Is(err, pipeline.ErrPartial) {
				t.Errorf("error %v: want ErrAppTokenRefused (nothing was committed)", err)
			}
			after := datasetState(t, b)
			if len(after) != len(before) {
				t.Errorf("objects: %d before, %d after", len(before), len(after))
			}
			for k, v := range before {
				if after[k] != v {
					t.Errorf("%s changed", k)
				}
			}
			if got := rowsPerUser(t, b); !mapsEqual(got, perUser) {
				t.Errorf("rows per user %v, were %v", got, perUser)
			}
			if len(mustList(t, b, "_inflight/")) != 0 {
				t.Error("an in-flight marker was left: the run wrote data")
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestForbiddenUserNeverPurged: a 403 for one user while the others are served is a
// user-level refusal, not a revocation: reported as "forbidden", routine (no error),
// and never purged, whether it comes at /me or in the middle of the run.
func TestForbiddenUserNeverPurged(t *testing.T) {
	for _, midRun := range []bool{false, true} {
		name := "at /me"
		if midRun {
			name = "mid-run"
		}
		t.Run(name, func(t *testing.T) {
			b := newLocal(t)
			h := newHarness(t, b, threeUsers())
			h.run(h.opts.From, h.opts.To)
			perUser := rowsPerUser(t, b)
			u2 := h.srv.Users()[1]
			src := &scripted{Client: h.client}
			if midRun {
				var once sync.Once
				src.onTx = func(tok akahu.Token) {
					if string(tok) == u2.Token {
						once.Do(func() { h.srv.ForbidUser(u2.ID) })
					}
				}
			} else {
				h.srv.ForbidUser(u2.ID)
			}
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Source = src
			cfg.PurgeRevoked = true
			m, err := pipeline.Run(context.Background(), cfg)
			if m == nil {
				t.Fatalf("run: %v", err)
			}
			if err != nil {
				t.Errorf("a forbidden user is routine: err %v, want nil", err)
			}
			if len(m.Purges) != 0 {
				t.Errorf("purges %+v: a 403 must never purge", m.Purges)
			}
			if got := rowsPerUser(t, b); !mapsEqual(got, perUser) {
				t.Errorf("rows per user %v, were %v", got, perUser)
			}
			for _, us := range m.Users {
				want := "ok"
				if us.Index == 2 {
					want = "forbidden"
				}
				if us.Status != want {
					t.Errorf("user %d (%s): status %q, want %q", us.Index, us.UserID, us.Status, want)
				}
			}
			if len(m.Users) != 1 || m.UserCounts["forbidden"] != 1 || m.UserCounts["ok"] != len(h.tokens)-1 {
				t.Errorf("users %+v, counts %v: want the forbidden user listed and the others counted ok", m.Users, m.UserCounts)
			}
			if len(m.Failures) != 0 {
				t.Errorf("failures %v: a forbidden user is reported in users, not as a failure", m.Failures)
			}
		})
	}
}

// TestRevokedUserIsRoutine: at fleet scale some user has always revoked access, so a
// revoked user is reported (status, error text) without making the run partial.
func TestRevokedUserIsRoutine(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, threeUsers())
	h.run(h.opts.From, h.opts.To)
	u2 := h.srv.Users()[1]
	h.srv.RevokeUser(u2.ID)
	m, err := pipeline.Run(context.Background(), h.config(h.opts.From, h.opts.To))
	if m == nil || err != nil {
		t.Fatalf("run with one revoked user: manifest %v, err %v; want a commit and no error", m != nil, err)
	}
	if len(m.Failures) != 0 {
		t.Errorf("failures %v: a revoked user is not a failure", m.Failures)
	}
	var us pipeline.UserStatus
	for _, e := range m.Users {
		if e.Index == 2 {
			us = e
		}
	}
	if us.Status != "revoked" || us.UserID != u2.ID || !strings.Contains(us.Error, "401") {
		t.Errorf("user 2: %+v, want revoked, named %s, with the 401", us, u2.ID)
	}
	if rowsPerUser(t, b)[u2.ID] == 0 {
		t.Error("a revoked user's rows were dropped without --purge-revoked")
	}

	// FailOnRevoked restores the strict behaviour: the run commits, and says so.
	cfg := h.config(h.opts.From, h.opts.To)
	cfg.FailOnRevoked = true
	m, err = pipeline.Run(context.Background(), cfg)
	if m == nil || !errors.Is(err, pipeline.ErrPartial) || !strings.Contains(err.Error(), "user 2") {
		t.Fatalf("FailOnRevoked: manifest %v, err %v; want a commit and ErrPartial naming user 2", m != nil, err)
	}
	if strings.Contains(err.Error(), u2.Token) {
		t.Error("the error names the token")
	}
	// So does a forbidden user.
	h.srv.ForbidUser(h.srv.Users()[2].ID)
	m, err = pipeline.Run(context.Background(), cfg)
	if m == nil || !errors.Is(err, pipeline.ErrPartial) || !strings.Contains(err.Error(), "user 3") {
		t.Fatalf("FailOnRevoked, forbidden user: manifest %v, err %v; want ErrPartial naming user 3", m != nil, err)
	}
}

// TestPurgeRevokedSafety: the ways a purge of revoked users could hit the wrong
// user, each on a dataset of three users backfilled by an earlier run.
func TestPurgeRevokedSafety(t *testing.T) {
	rejected := &akahu.Error{Endpoint: "GET /me", Status: 503, Err: akahu.ErrServer}
	tests := []struct {
		name string
		// earlier adjusts the backfill (tokens, source); setup prepares the run under
		// test. Both get the users' tokens u[0..2].
		earlier    func(h *harness, s *scripted, u []akahu.Token) []akahu.Token
		setup      func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token
		wantPurged []int // indexes of the fake's users whose rows must be gone
		wantErr    error
	}{
		{
			name: "one user revoked at /me, the others served: purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				h.srv.RevokeUser(h.srv.Users()[1].ID)
				return u
			},
			wantPurged: []int{1},
		},
		{
			name: "one user revoked in the middle of the run: purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				var once sync.Once
				s.onTx = func(tok akahu.Token) {
					if tok == u[1] {
						once.Do(func() { h.srv.RevokeUser(h.srv.Users()[1].ID) })
					}
				}
				return u
			},
			wantPurged: []int{1},
		},
		{
			name: "every user revoked at /me: suspicious, nothing purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				for _, us := range h.srv.Users() {
					h.srv.RevokeUser(us.ID)
				}
				return u
			},
			wantErr: pipeline.ErrPartial,
		},
		{
			name: "every user revoked in the middle of the run: nothing purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				var once sync.Once
				s.onTx = func(akahu.Token) {
					once.Do(func() {
						for _, us := range h.srv.Users() {
							h.srv.RevokeUser(us.ID)
						}
					})
				}
				return u
			},
			wantErr: pipeline.ErrPartial,
		},
		{
			name: "every user refused, some 401 and some 403: not the app token, nothing purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				users := h.srv.Users()
				h.srv.RevokeUser(users[1].ID)
				h.srv.ForbidUser(users[0].ID)
				h.srv.ForbidUser(users[2].ID)
				return u
			},
			wantErr: pipeline.ErrPartial,
		},
		{
			name: "one user 403, one 401, one served: the 401 alone purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				users := h.srv.Users()
				h.srv.ForbidUser(users[0].ID)
				h.srv.RevokeUser(users[1].ID)
				return u
			},
			wantPurged: []int{1},
		},
		{
			name: "a token no earlier run knows is revoked: nobody to purge",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				return append(u, "user_token_never_seen_before_0001")
			},
		},
		{
			name: "tokens file reordered, one revoked: that user alone",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				h.srv.RevokeUser(h.srv.Users()[1].ID)
				return []akahu.Token{u[2], u[1], u[0]}
			},
			wantPurged: []int{1},
		},
		{
			name: "a token replaced by a new one that is refused: nobody purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				return []akahu.Token{u[0], "user_token_replacement_0002", u[2]}
			},
		},
		{
			name: "fingerprint shared by two users in the earlier manifest: ambiguous, nobody purged",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				users := h.srv.Users()
				editLatestManifest(t, h.b, func(us []map[string]any) []map[string]any {
					fp := fingerprintOf(t, us, users[1].ID)
					// A collision: user 1's entry carries user 2's fingerprint too, first.
					dup := map[string]any{"user_id": users[0].ID, "index": 9, "token_fingerprint": fp, "status": "ok"}
					return append([]map[string]any{dup}, us...)
				})
				h.srv.RevokeUser(users[1].ID)
				return u
			},
		},
		{
			name: "earlier manifest with 48-bit fingerprints (older tool): still matched",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				editLatestManifest(t, h.b, func(us []map[string]any) []map[string]any {
					for _, e := range us {
						e["token_fingerprint"] = e["token_fingerprint"].(string)[:12]
					}
					return us
				})
				h.srv.RevokeUser(h.srv.Users()[1].ID)
				return u
			},
			wantPurged: []int{1},
		},
		{
			name: "same user twice: old token revoked, new token served: not purged",
			earlier: func(h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				s.alias = map[akahu.Token]akahu.Token{"user_token_old_of_user2": u[1]}
				return []akahu.Token{u[0], "user_token_old_of_user2", u[2]}
			},
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				s.alias = map[akahu.Token]akahu.Token{"user_token_old_of_user2": "user_token_revoked_at_akahu"}
				return []akahu.Token{u[0], "user_token_old_of_user2", u[1], u[2]}
			},
		},
		{
			name: "same user twice: old token revoked, the other failing (503 at /me): not purged",
			earlier: func(h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				s.alias = map[akahu.Token]akahu.Token{"user_token_old_of_user2": u[1], "user_token_new_of_user2": u[1]}
				s.noAccounts = map[akahu.Token]bool{"user_token_new_of_user2": true}
				return []akahu.Token{u[0], "user_token_old_of_user2", "user_token_new_of_user2", u[2]}
			},
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				s.alias = map[akahu.Token]akahu.Token{"user_token_old_of_user2": "user_token_revoked_at_akahu"}
				s.meErr = map[akahu.Token]error{"user_token_new_of_user2": rejected}
				return []akahu.Token{u[0], "user_token_old_of_user2", "user_token_new_of_user2", u[2]}
			},
			wantErr: pipeline.ErrPartial, // the 503 is a failure a retry can fix
		},
		{
			name: "a token of unknown user failing (503 at /me) may be the revoked user's new one: purge deferred",
			setup: func(t *testing.T, h *harness, s *scripted, u []akahu.Token) []akahu.Token {
				h.srv.RevokeUser(h.srv.Users()[1].ID)
				s.meErr = map[akahu.Token]error{"user_token_brand_new_0003": rejected}
				return append(u, "user_token_brand_new_0003")
			},
			wantErr: pipeline.ErrPartial,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newLocal(t)
			h := newHarness(t, b, threeUsers())
			users := h.srv.Users()
			u := slices.Clone(h.tokens)
			s := &scripted{Client: h.client}
			cfg := h.config(h.opts.From, h.opts.To)
			cfg.Source = s
			if tt.earlier != nil {
				cfg.Users = tt.earlier(h, s, u)
			}
			if m, err := pipeline.Run(context.Background(), cfg); m == nil || err != nil {
				t.Fatalf("backfill: %v", err)
			}
			before := rowsPerUser(t, b)
			for _, us := range users {
				if before[us.ID] == 0 {
					t.Fatalf("backfill has no rows of %s", us.ID)
				}
			}
			s = &scripted{Client: h.client}
			cfg = h.config(h.opts.From, h.opts.To)
			cfg.Source = s
			cfg.PurgeRevoked = true
			cfg.Users = tt.setup(t, h, s, u)
			m, err := pipeline.Run(context.Background(), cfg)
			if m == nil {
				t.Fatalf("run did not commit: %v", err)
			}
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
			after := rowsPerUser(t, b)
			var wantIDs, gotIDs []string
			for i, us := range users {
				purged := slices.Contains(tt.wantPurged, i)
				switch {
				case purged && after[us.ID] != 0:
					t.Errorf("user %s (%d) kept %d rows, want purged", us.ID, i, after[us.ID])
				case !purged && after[us.ID] != before[us.ID]:
					t.Errorf("user %s (%d) has %d rows, had %d: must not be purged", us.ID, i, after[us.ID], before[us.ID])
				}
				if purged {
					wantIDs = append(wantIDs, us.ID)
				}
			}
			for _, p := range m.Purges {
				gotIDs = append(gotIDs, p.ID)
			}
			for _, us := range m.Users {
				if (us.Status == "revoked") != (us.Note != "") {
					t.Errorf("user %d (%s): status %s, note %q: every revoked user, and only those, says whether it was purged", us.Index, us.UserID, us.Status, us.Note)
				}
				if us.Status == "forbidden" && strings.Contains(us.Note, "purged") {
					t.Errorf("user %d: forbidden, note %q", us.Index, us.Note)
				}
			}
			if !slices.Equal(gotIDs, wantIDs) {
				t.Errorf("manifest purges %v, want %v", gotIDs, wantIDs)
			}
			// A later run with the same tokens keeps the outcome.
			if tt.wantPurged == nil {
				return
			}
			cfg.Start, cfg.End = "", ""
			if m, _ := pipeline.Run(context.Background(), cfg); m == nil {
				t.Fatal("later run did not commit")
			}
			for _, i := range tt.wantPurged {
				if n := rowsPerUser(t, b)[users[i].ID]; n != 0 {
					t.Errorf("later run: purged user %s has %d rows", users[i].ID, n)
				}
			}
		})
	}
}

// TestTokenFingerprintLength: new manifests record 128-bit token fingerprints, so a
// collision between two users' tokens is out of reach (it was 48 bits).
func TestTokenFingerprintLength(t *testing.T) {
	b := newLocal(t)
	h := newHarness(t, b, threeUsers())
	h.run(h.opts.From, h.opts.To)
	// The state object names each user's token by its fingerprint.
	data, _, err := b.Get(context.Background(), "_state/bucket-000.users.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		var e struct {
			User *struct {
				TokenFP string `json:"token_fingerprint"`
			} `json:"user"`
		}
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("state line %q: %v", l, err)
		}
		if e.User == nil {
			continue
		}
		if len(e.User.TokenFP) < 32 {
			t.Errorf("fingerprint of %d hex digits, want at least 32", len(e.User.TokenFP))
		}
		if seen[e.User.TokenFP] {
			t.Errorf("fingerprint %s twice", e.User.TokenFP)
		}
		seen[e.User.TokenFP] = true
	}
	if len(seen) != len(h.tokens) {
		t.Errorf("state names %d users' tokens, want %d", len(seen), len(h.tokens))
	}
}
