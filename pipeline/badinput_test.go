package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// tamper sits between the client and the fake and rewrites the pages of one account:
// those of its own endpoint (match), or with account set, its items in every page of
// throughTamper points the harness's client at a proxy serving tp, closed when the
// test ends.
func (h *harness) throughTamper(tp *tamper) {
	h.t.Helper()
	proxy := httptest.NewServer(tp)
	h.t.Cleanup(proxy.Close)
	client, err := akahu.New(akahu.Config{BaseURL: proxy.URL + "/v1", AppToken: akahu.Token(h.srv.AppToken()),
		BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err != nil {
		h.t.Fatal(err)
	}
	h.client = client
}

// settled transactions, the all-accounts walk's included.
type tamper struct {
	next    http.Handler
	match   string
	account string
	edit    atomic.Pointer[func(items []map[string]json.RawMessage) []map[string]json.RawMessage]
}

func (tp *tamper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	edit := tp.edit.Load()
	applies := tp.match != "" && strings.Contains(r.URL.Path, tp.match) && !strings.HasSuffix(r.URL.Path, "/pending")
	if tp.account != "" && strings.HasSuffix(r.URL.Path, "/transactions") && edit != nil {
		applies = true
		if all := *edit; all != nil {
			own := func(items []map[string]json.RawMessage) []map[string]json.RawMessage {
				var mine, rest []map[string]json.RawMessage
				for _, it := range items {
					if string(it["_account"]) == `"`+tp.account+`"` {
						mine = append(mine, it)
					} else {
						rest = append(rest, it)
					}
				}
				if len(mine) == 0 {
					return items
				}
				return append(all(mine), rest...)
			}
			edit = &own
		}
	}
	if edit == nil || *edit == nil || !applies {
		tp.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	tp.next.ServeHTTP(rec, r)
	var page struct {
		Success bool                         `json:"success"`
		Items   []map[string]json.RawMessage `json:"items"`
		Cursor  json.RawMessage              `json:"cursor"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &page) != nil || len(page.Items) == 0 {
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	page.Items = (*edit)(page.Items)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(page)
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}

func TestBadResponses(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	set := func(field string, v json.RawMessage) func([]map[string]json.RawMessage) []map[string]json.RawMessage {
		return func(items []map[string]json.RawMessage) []map[string]json.RawMessage {
			items[0][field] = v
			return items
		}
	}
	cases := []struct {
		name string
		edit func([]map[string]json.RawMessage) []map[string]json.RawMessage
		// want is a substring of the account's failure, or "" for a documented tolerance.
		want string
	}{
		{"invalid UTF-8 in a description", set("description", raw("\"caf\xe9\"")), "UTF-8"},
		{"amount of an unexpected type", set("amount", raw("true")), "amount"},
		{"date that is not a date", set("date", raw(`"yesterday"`)), "date"},
		{"missing _id", func(items []map[string]json.RawMessage) []map[string]json.RawMessage {
			delete(items[0], "_id")
			return items
		}, "_id"},
		{"amount with more decimals than the column", set("amount", raw("1.00001")), "amount"},
		{"amount too large for DECIMAL(18,4)", set("amount", raw("123456789012345678")), "amount"},
		{"transaction of another account", set("_account", raw(`"acc_somebodyelse000000000000"`)), "belongs to account"},
		// Layout 2 files a user's rows by the token's user: a row of another user
		// would land in a bucket a purge of that user never reads.
		{"transaction of another user", set("_user", raw(`"user_somebodyelse00000000000"`)), "belongs to user user_somebodyelse00000000000"},
		{"transaction dated outside the window", set("date", raw(`"1999-12-31T11:00:00.000Z"`)), "outside the window"},
		// Tolerances: a settled amount sent as a string parses exactly like the number;
		// an id twice in one response keeps the first copy and is counted.
		{"settled amount as a string", func(items []map[string]json.RawMessage) []map[string]json.RawMessage {
			items[0]["amount"] = raw(`"` + string(items[0]["amount"]) + `"`)
			return items
		}, ""},
		{"duplicate id in one response", func(items []map[string]json.RawMessage) []map[string]json.RawMessage {
			return append(items, items[0])
		}, ""},
	}
	// Each case runs twice: with every account walked on its own (the bad page is the
	// account's), and by default, where the bad item arrives in the walk over all the
	// user's accounts, which fails and is done again account by account, so only the
	// one account fails.
	for _, c := range cases {
		for _, perAccount := range []bool{true, false} {
			name := c.name + "/user walk"
			if perAccount {
				name = c.name + "/account walks"
			}
			t.Run(name, func(t *testing.T) {
				b := newLocal(t)
				h := newHarness(t, b, smallPopulation())
				h.accountWalks = perAccount
				acct, _, _ := h.pickAccount(date(2026, 1, 1), date(2026, 2, 1))
				tp := &tamper{next: h.srv.Fake, match: "/accounts/" + acct + "/transactions"}
				if !perAccount {
					tp.match, tp.account = "", acct
				}
				h.throughTamper(tp)
				from, to := h.opts.From, h.opts.To
				h.run(from, to)
				before := contentOf(t, h)
				tp.edit.Store(&c.edit)
				m, err := pipeline.Run(context.Background(), h.config(from, to))
				if m == nil {
					t.Fatalf("nothing committed: %v", err)
				}
				if c.want == "" {
					if err != nil {
						t.Fatalf("tolerated oddity failed the run: %v", err)
					}
					if after := contentOf(t, h); len(after) != len(before) {
						t.Errorf("rows %d → %d", len(before), len(after))
					}
					if c.name == "duplicate id in one response" && m.Counts.Duplicates == 0 {
						t.Error("duplicate not counted in the manifest")
					}
					h.expectFaithful(from, to)
					return
				}
				if !errors.Is(err, pipeline.ErrPartial) || len(m.Failures) != 1 {
					t.Fatalf("err %v, failures %q: want the one account to fail", err, m.Failures)
				}
				f := m.Failures[0]
				if !strings.Contains(f, acct) || !strings.Contains(f, c.want) || !strings.Contains(f, "window") {
					t.Errorf("failure %q does not name the account, the window and %q", f, c.want)
				}
				if after := contentOf(t, h); len(after) != len(before) || m.Counts.Deleted != 0 {
					t.Errorf("a bad response changed the dataset: rows %d → %d, deleted %d", len(before), len(after), m.Counts.Deleted)
				}
			})
		}
	}
}
