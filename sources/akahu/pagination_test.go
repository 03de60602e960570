package akahu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// cursorFor is the opaque cursor that leads to page i (i >= 1); it holds
// characters that must survive query encoding.
func cursorFor(i int) string { return fmt.Sprintf("c+%d/==&x=%d", i, i) }

// pagedHandler serves pages[i] for the i-th cursor, checking that every
// request carries the same start and end and a cursor only when one was
// issued. Items are {"_id": id}.
func pagedHandler(t testing.TB, pages [][]string) http.HandlerFunc {
	var (
		mu         sync.Mutex
		start, end string
	)
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		if start == "" {
			start, end = q.Get("start"), q.Get("end")
		}
		s, e := start, end
		mu.Unlock()
		if q.Get("start") != s || q.Get("end") != e || s == "" || e == "" {
			t.Errorf("request %s: start/end = %q/%q, want %q/%q", r.URL.RawQuery, q.Get("start"), q.Get("end"), s, e)
		}
		i := 0
		if q.Has("cursor") {
			c := q.Get("cursor")
			i = slices.IndexFunc(pages, func([]string) bool { return false }) // -1
			for j := 1; j < len(pages); j++ {
				if cursorFor(j) == c {
					i = j
				}
			}
			if i < 0 {
				status(400, `{"success":false,"message":"Invalid cursor"}`)(w, r)
				return
			}
		}
		items := make([]map[string]string, 0, len(pages[i]))
		for _, id := range pages[i] {
			items = append(items, map[string]string{"_id": id, "description": "café ☕ \"quoted\""})
		}
		var next any
		if i+1 < len(pages) {
			next = cursorFor(i + 1)
		}
		okJSON(map[string]any{"success": true, "items": items, "cursor": map[string]any{"next": next}})(w, r)
	}
}

func TestTransactionsPagination(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pages [][]string
	}{
		{"single page", [][]string{{"t1", "t2"}}},
		{"single empty page", [][]string{{}}},
		{"empty pages in the middle", [][]string{{"t1", "t2"}, {}, {}, {"t3"}, {"t4", "t5"}}},
		{"empty first page with next", [][]string{{}, {"t1"}}},
		{"empty last page", [][]string{{"t1"}, {"t2"}, {}}},
	}
	loc, _ := time.LoadLocation("Pacific/Auckland")
	w := LocalDates(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), loc)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tc := newTestClient(t, pagedHandler(t, tt.pages))
			var got []string
			var indexes []int
			err := tc.Transactions(context.Background(), testUser, "acc_1", w, func(p Page) error {
				indexes = append(indexes, p.Index)
				for _, it := range p.Items {
					var v struct {
						ID          string `json:"_id"`
						Description string `json:"description"`
					}
					if err := json.Unmarshal(it, &v); err != nil {
						return err
					}
					if v.Description != "café ☕ \"quoted\"" {
						t.Errorf("item %s description = %q", v.ID, v.Description)
					}
					got = append(got, v.ID)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Transactions: %v", err)
			}
			want := slices.Concat(tt.pages...)
			if !slices.Equal(got, want) {
				t.Errorf("items = %v, want %v (each exactly once, in order)", got, want)
			}
			if len(indexes) != len(tt.pages) {
				t.Errorf("callbacks = %d, want one per page (%d)", len(indexes), len(tt.pages))
			}
			for i, idx := range indexes {
				if idx != i {
					t.Errorf("page indexes = %v", indexes)
					break
				}
			}
			reqs := tc.rec.requests()
			if len(reqs) != len(tt.pages) {
				t.Fatalf("requests = %d, want %d", len(reqs), len(tt.pages))
			}
			for i, r := range reqs {
				q := r.URL.Query()
				if q.Get("start") != "2023-12-31T10:59:59.999Z" || q.Get("end") != "2024-01-31T10:59:59.999Z" {
					t.Errorf("request %d: start=%q end=%q", i, q.Get("start"), q.Get("end"))
				}
				if i == 0 && q.Has("cursor") {
					t.Errorf("first request sent a cursor")
				}
				if i > 0 && q.Get("cursor") != cursorFor(i) {
					t.Errorf("request %d: cursor = %q, want %q", i, q.Get("cursor"), cursorFor(i))
				}
				if r.URL.Path != "/v1/accounts/acc_1/transactions" {
					t.Errorf("path = %q", r.URL.Path)
				}
			}
		})
	}
}

func TestTransactionsCursorFaults(t *testing.T) {
	t.Parallel()
	w := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	page := func(next string) string {
		return `{"success":true,"items":[{"_id":"t"}],"cursor":{"next":` + next + `}}`
	}
	tests := []struct {
		name     string
		steps    []http.HandlerFunc
		wantReqs int
		wantText string
	}{
		{"same cursor twice", []http.HandlerFunc{status(200, page(`"A"`)), status(200, page(`"B"`)), status(200, page(`"A"`))}, 3, "cursor loop"},
		{"cursor repeats itself", []http.HandlerFunc{status(200, page(`"A"`))}, 2, "cursor loop"},
		{"string null is never sent back", []http.HandlerFunc{status(200, page(`"null"`))}, 1, `cursor.next is "null"`},
		{"empty cursor is never sent back", []http.HandlerFunc{status(200, page(`""`))}, 1, `cursor.next is ""`},
		{"next is a number", []http.HandlerFunc{status(200, page(`7`))}, 4, "next is a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tc := newTestClient(t, script(tt.steps...))
			err := tc.Transactions(context.Background(), testUser, "acc_9", w, func(Page) error { return nil })
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("err = %v, want ErrMalformed containing %q", err, tt.wantText)
			}
			if !strings.Contains(err.Error(), "(account acc_9, window 2024-01-01T00:00:00.000Z..2024-02-01T00:00:00.000Z)") {
				t.Errorf("error does not name account and window: %v", err)
			}
			reqs := tc.rec.requests()
			if len(reqs) != tt.wantReqs {
				t.Errorf("requests = %d, want %d", len(reqs), tt.wantReqs)
			}
			for _, r := range reqs {
				if c := r.URL.Query(); c.Has("cursor") && (c.Get("cursor") == "null" || c.Get("cursor") == "") {
					t.Errorf("sent cursor %q", c.Get("cursor"))
				}
			}
		})
	}
}

func TestTransactionsCallbackErrorStops(t *testing.T) {
	t.Parallel()
	tc := newTestClient(t, pagedHandler(t, [][]string{{"t1"}, {"t2"}, {"t3"}}))
	stop := errors.New("disk full")
	w := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	err := tc.Transactions(context.Background(), testUser, "acc_1", w, func(p Page) error {
		if p.Index == 1 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
	if !strings.Contains(err.Error(), "account acc_1") || !strings.Contains(err.Error(), "page 1") {
		t.Errorf("callback error not wrapped with context: %v", err)
	}
	if n := len(tc.rec.requests()); n != 2 {
		t.Errorf("requests = %d, want 2 (walk stops at the failing page)", n)
	}
}

func TestTransactionsRetriesMidWalk(t *testing.T) {
	t.Parallel()
	inner := pagedHandler(t, [][]string{{"t1"}, {"t2"}, {"t3"}})
	var mu sync.Mutex
	failed := map[string]bool{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !failed[r.URL.RawQuery]
		failed[r.URL.RawQuery] = true
		mu.Unlock()
		if first && r.URL.Query().Has("cursor") {
			status(503, ``)(w, r) // every cursored page fails once
			return
		}
		inner(w, r)
	})
	tc := newTestClient(t, h)
	w := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	var got []string
	err := tc.Transactions(context.Background(), testUser, "acc_1", w, func(p Page) error {
		for _, it := range p.Items {
			got = append(got, string(it))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("items = %v, want 3 exactly once", got)
	}
	if st := tc.Stats(); st.Requests != 5 || st.Retries != 2 || st.ServerErrors != 2 || st.Transactions != 3 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestTransactionsArgumentErrors(t *testing.T) {
	t.Parallel()
	tc := newTestClient(t, status(200, `{"success":true,"items":[]}`))
	ok := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	nop := func(Page) error { return nil }
	tests := []struct {
		name    string
		user    Token
		account string
		w       Window
		fn      func(Page) error
	}{
		{"empty user token", "", "acc_1", ok, nop},
		{"empty account", testUser, "", ok, nop},
		{"zero window", testUser, "acc_1", Window{}, nop},
		{"inverted window", testUser, "acc_1", Window{Start: ok.End, End: ok.Start}, nop},
		{"nil callback", testUser, "acc_1", ok, nil},
	}
	for _, tt := range tests {
		err := tc.Transactions(context.Background(), tt.user, tt.account, tt.w, tt.fn)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", tt.name, err)
		}
	}
	if n := len(tc.rec.requests()); n != 0 {
		t.Errorf("invalid arguments still sent %d requests", n)
	}
}

func TestAccountIDIsPathEscaped(t *testing.T) {
	t.Parallel()
	tc := newTestClient(t, status(404, `{"success":false,"message":"Not Found"}`))
	_, err := tc.Pending(context.Background(), testUser, "acc/../../me?x=1")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	r := tc.rec.requests()[0]
	if r.URL.EscapedPath() != "/v1/accounts/acc%2F..%2F..%2Fme%3Fx=1/transactions/pending" || r.URL.RawQuery != "" {
		t.Errorf("path = %q query %q", r.URL.EscapedPath(), r.URL.RawQuery)
	}
}

// TestWalkReusesPageBuffer: a walk's page buffer is free once the walk is over
// (items are valid only during the callback), and the next walk reads into it
// instead of growing a new one; the client keeps at most MaxInFlight of them.
func TestWalkReusesPageBuffer(t *testing.T) {
	t.Parallel()
	tc := newTestClient(t, status(200, `{"success":true,"items":[{"_id":"t1"}],"cursor":{"next":null}}`),
		func(c *Config) { c.MaxInFlight = 2 })
	w := Window{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}
	walk := func() *byte {
		var first *byte
		err := tc.Transactions(context.Background(), testUser, "acc_1", w, func(p Page) error {
			first = unsafe.SliceData(p.Items[0])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return first
	}
	a, b := walk(), walk()
	if a != b {
		t.Errorf("the second walk read its page into a new buffer, not the first walk's")
	}
	for range 3 {
		tc.giveBody(make([]byte, 0, 100))
	}
	tc.giveBody(make([]byte, 0, maxPooledBody+1))
	if n := len(tc.bodies); n != 2 {
		t.Errorf("%d buffers kept, want MaxInFlight (2), none over maxPooledBody", n)
	}
}
