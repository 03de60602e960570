package akahutest

import (
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a Fake behind an httptest.Server on 127.0.0.1.
type Server struct {
	*Fake
	// URL is the base URL including the /v1 prefix, e.g. http://127.0.0.1:PORT/v1.
	URL string
	// HTTP is the underlying test server.
	HTTP *httptest.Server
}

// NewServer starts New(opts) on a loopback httptest server. Call Close.
func NewServer(opts Options) *Server {
	f := New(opts)
	hs := httptest.NewServer(f)
	return &Server{Fake: f, URL: hs.URL + "/v1", HTTP: hs}
}

// Close shuts the server down and blocks until its requests have finished.
func (s *Server) Close() { s.HTTP.Close() }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.HTTP.Client() }

// response is an answer before it is written, so faults can mangle it.
type response struct {
	status int
	body   []byte
	header map[string]string
	page   int // settled items in a page answer; -1 if not a page
	empty  bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func errorResponse(status int, msg string) response {
	b := append([]byte(`{"success":false,"message":`), appendString(nil, msg)...)
	return response{status: status, body: append(b, '}'), page: -1}
}

// route classifies a path: its endpoint kind and the id in it (an account id,
// or a transaction id for kind "transaction").
func route(method, path string) (kind, id, wantMethod string) {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return "unknown", "", ""
	}
	p := strings.Split(rest, "/")
	switch {
	case len(p) == 1 && p[0] == "me":
		return "me", "", http.MethodGet
	case len(p) == 1 && p[0] == "accounts":
		return "accounts", "", http.MethodGet
	case len(p) == 2 && p[0] == "accounts" && p[1] != "":
		return "account", p[1], http.MethodGet
	case len(p) == 3 && p[0] == "accounts" && p[1] != "" && p[2] == "transactions":
		return "account_transactions", p[1], http.MethodGet
	case len(p) == 4 && p[0] == "accounts" && p[1] != "" && p[2] == "transactions" && p[3] == "pending":
		return "account_pending", p[1], http.MethodGet
	case len(p) == 1 && p[0] == "transactions":
		return "transactions", "", http.MethodGet
	case len(p) == 2 && p[0] == "transactions" && p[1] == "pending":
		return "pending", "", http.MethodGet
	case len(p) == 2 && p[0] == "transactions" && p[1] != "":
		return "transaction", p[1], http.MethodGet
	case len(p) == 1 && p[0] == "refresh":
		return "refresh", "", http.MethodPost
	case len(p) == 2 && p[0] == "refresh" && p[1] != "":
		return "refresh", p[1], http.MethodPost
	}
	return "unknown", "", ""
}

// ServeHTTP serves the Akahu API under /v1.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, id, method := route(r.Method, r.URL.Path)
	latency, limited, ft := f.begin(kind, r.URL.RequestURI())
	if !sleep(r.Context(), latency) {
		f.countStatus(0)
		return
	}
	if limited {
		f.write(w, errorResponse(http.StatusTooManyRequests, "Too many requests"), false)
		return
	}
	if ft != nil {
		switch ft.Kind {
		case RateLimit:
			resp := errorResponse(http.StatusTooManyRequests, "Too many requests")
			if ft.RetryAfter > 0 {
				secs := (ft.RetryAfter + time.Second - 1) / time.Second
				resp.header = map[string]string{"Retry-After": strconv.Itoa(int(secs))}
			}
			f.write(w, resp, false)
			return
		case ServerError:
			st := ft.Status
			if st < 500 {
				st = http.StatusInternalServerError
			}
			f.write(w, errorResponse(st, http.StatusText(st)), false)
			return
		case Malformed:
			f.write(w, response{status: http.StatusOK, body: []byte(`{"success":true,"items":[{"_id":"trans_` + "\x00" + `",]`), page: -1}, false)
			return
		case Reset:
			f.reset(w)
			return
		case Slow:
			d := ft.Delay
			if d <= 0 {
				d = 100 * time.Millisecond
			}
			if !sleep(r.Context(), d) {
				f.countStatus(0)
				return
			}
		}
	}
	resp := f.answer(r, kind, id, method)
	f.write(w, resp, ft != nil && ft.Kind == Truncate)
}

func (f *Fake) reset(w http.ResponseWriter) {
	f.countStatus(0)
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (f *Fake) write(w http.ResponseWriter, resp response, truncate bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range resp.header {
		h.Set(k, v)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	if resp.page >= 0 && resp.status == http.StatusOK {
		f.countPage(resp.page, resp.empty)
	}
	f.countStatus(resp.status)
	w.WriteHeader(resp.status)
	body := resp.body
	if truncate {
		body = body[:len(body)/2]
	}
	_, _ = w.Write(body)
	if truncate {
		// The declared length was not written: net/http closes the connection.
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
}

func (f *Fake) answer(r *http.Request, kind, id, method string) response {
	if kind == "unknown" {
		return errorResponse(http.StatusNotFound, "Not found")
	}
	if r.Method != method {
		return errorResponse(http.StatusMethodNotAllowed, "Method not allowed")
	}
	if r.Header.Get("X-Akahu-Id") != f.appToken {
		return errorResponse(http.StatusForbidden, "Missing or invalid X-Akahu-Id header")
	}
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "Bearer ") {
		return errorResponse(http.StatusUnauthorized, "Unauthorized")
	}
	u := f.byToken[strings.TrimSpace(auth[7:])]
	if u == nil {
		return errorResponse(http.StatusUnauthorized, "Unauthorized")
	}
	f.mu.RLock()
	revoked, forbidden := u.revoked, u.forbidden
	f.mu.RUnlock()
	if revoked {
		return errorResponse(http.StatusUnauthorized, "Unauthorized")
	}
	if forbidden {
		return errorResponse(http.StatusForbidden, "Forbidden")
	}
	f.settleRefreshes(u)
	var acc *account
	if id != "" && kind != "transaction" {
		acc = f.byAcctID[id]
		if acc == nil || acc.user != u {
			return errorResponse(http.StatusNotFound, "Account not found")
		}
	}
	switch kind {
	case "me":
		b := []byte(`{"success":true,"item":{`)
		b = appendField(b, "_id", u.id)
		b = append(b, ',')
		b = appendField(b, "email", u.email)
		b = append(b, ',')
		b = appendField(b, "preferred_name", holders[u.idx%len(holders)])
		b = append(b, `,"access_granted_at":`...)
		b = appendQuotedTime(b, u.accessGranted)
		return response{status: http.StatusOK, body: append(b, '}', '}'), page: -1}
	case "accounts":
		b := []byte(`{"success":true,"items":[`)
		f.mu.RLock()
		for i, a := range u.accounts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, f.accountJSON(a)...)
		}
		f.mu.RUnlock()
		return response{status: http.StatusOK, body: append(b, ']', '}'), page: -1}
	case "account":
		f.mu.RLock()
		b := append([]byte(`{"success":true,"item":`), f.accountJSON(acc)...)
		f.mu.RUnlock()
		return response{status: http.StatusOK, body: append(b, '}'), page: -1}
	case "refresh":
		return f.askRefresh(u, acc)
	case "transaction":
		return f.transaction(u, id)
	case "pending", "account_pending":
		accs := u.accounts
		if acc != nil {
			accs = []*account{acc}
		}
		b := []byte(`{"success":true,"items":[`)
		f.mu.RLock()
		n := 0
		for _, a := range accs {
			for _, p := range a.pending {
				if n > 0 {
					b = append(b, ',')
				}
				b = f.appendPending(b, a, p)
				n++
			}
		}
		f.mu.RUnlock()
		return response{status: http.StatusOK, body: append(b, ']', '}'), page: -1}
	default: // transactions, account_transactions
		scope := "user:" + u.id
		accs := u.accounts
		if acc != nil {
			scope, accs = "acc:"+acc.id, []*account{acc}
		}
		return f.page(r, scope, accs)
	}
}

// transaction answers GET /transactions/{id}: the settled transaction as
// currently served (after any scripted change), or 404 when no transaction
// has that id (deleted, replaced, never existed) or it belongs to another
// user. Pending transactions have no id and are never found.
func (f *Fake) transaction(u *user, id string) response {
	var b []byte
	f.mu.RLock()
	if t, err := f.lookup(id); err == nil && t.acc.user == u {
		b = append([]byte(`{"success":true,"item":`), f.appendTxn(nil, &t)...)
	}
	f.mu.RUnlock()
	if b == nil {
		return errorResponse(http.StatusNotFound, "Transaction not found")
	}
	return response{status: http.StatusOK, body: append(b, '}'), page: -1}
}

// ParseTime parses an Akahu start/end query value: an ISO 8601 date (UTC
// midnight) or date-time with Z, an offset or none (UTC), truncated to ms.
func ParseTime(s string) (time.Time, bool) {
	layouts := []string{
		"2006-01-02",
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999Z07",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return time.UnixMilli(t.UnixMilli()).UTC(), true
		}
	}
	return time.Time{}, false
}

// defaultWindow is the SDK's "last 30 days", relative to Options.To.
func (f *Fake) defaultWindow() (start, end int64) {
	end = f.midnight(f.toDay+1) - 1
	return end - 30*86400000, end
}

const cursorLen = 22

type cursor struct {
	page   uint32
	offset uint64
	fp     uint64
}

func (c cursor) encode() string {
	var b [cursorLen]byte
	b[0] = 1
	binary.BigEndian.PutUint32(b[1:], c.page)
	binary.BigEndian.PutUint64(b[5:], c.offset)
	binary.BigEndian.PutUint64(b[13:], c.fp)
	b[21] = checksum(b[:21])
	return base64.StdEncoding.EncodeToString(b[:])
}

func checksum(b []byte) byte {
	s := byte(0x5c)
	for _, c := range b {
		s = s*31 + c
	}
	return s
}

func decodeCursor(s string) (cursor, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != 1 || checksum(b[:21]) != b[21] {
		return cursor{}, false
	}
	return cursor{
		page:   binary.BigEndian.Uint32(b[1:]),
		offset: binary.BigEndian.Uint64(b[5:]),
		fp:     binary.BigEndian.Uint64(b[13:]),
	}, true
}

func (f *Fake) page(r *http.Request, scope string, accs []*account) response {
	q := r.URL.Query()
	ds, de := f.defaultWindow()
	win := window{start: ds, end: de}
	if v, ok := q["start"]; ok {
		t, ok := ParseTime(v[0])
		if !ok {
			return errorResponse(http.StatusBadRequest, "Invalid start date")
		}
		win.start = t.UnixMilli()
		if _, hasEnd := q["end"]; !hasEnd {
			win.end = de
		}
	}
	if v, ok := q["end"]; ok {
		t, ok := ParseTime(v[0])
		if !ok {
			return errorResponse(http.StatusBadRequest, "Invalid end date")
		}
		win.end = t.UnixMilli()
		if _, hasStart := q["start"]; !hasStart {
			win.start = win.end - 30*86400000
		}
	}
	fp := mix(f.key, mixString(scope), uint64(win.start), uint64(win.end))
	cur := cursor{page: 1, fp: fp}
	if v, ok := q["cursor"]; ok {
		c, ok := decodeCursor(v[0])
		if !ok || c.fp != fp || c.page < 2 {
			return errorResponse(http.StatusBadRequest, "Invalid cursor")
		}
		cur = c
	}
	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], `{"success":true,"items":[`...)
	n := 0
	f.mu.RLock()
	every := f.opts.EmptyPageEvery
	var total int
	empty := every > 0 && cur.page%uint32(every) == 0
	if empty {
		total = f.scan(accs, win, 0, 0, nil)
	} else {
		total = f.scan(accs, win, int(cur.offset), f.opts.PageSize, func(it item) {
			if n > 0 {
				b = append(b, ',')
			}
			t := f.materialise(it)
			b = f.appendTxn(b, &t)
			n++
		})
	}
	f.mu.RUnlock()
	next := cursor{page: cur.page + 1, offset: cur.offset + uint64(n), fp: fp}
	b = append(b, `],"cursor":{"next":`...)
	if int(next.offset) < total {
		b = append(b, '"')
		b = append(b, next.encode()...)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
		empty = false
	}
	b = append(b, "}}"...)
	body := append([]byte(nil), b...)
	*bp = b
	bufPool.Put(bp)
	return response{status: http.StatusOK, body: body, page: n, empty: empty && n == 0}
}
