package akahutest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// plain is a deliberately plain client: no retries, no keep-alive reuse, so
// faults are seen as they are.
var plain = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error // transport or body read error
}

func do(t testing.TB, method, rawURL string, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := plain.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func authHeaders(s *Server, token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token, "X-Akahu-Id": s.AppToken()}
}

func get(t testing.TB, s *Server, token, path string, q url.Values) reply {
	t.Helper()
	u := s.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return do(t, http.MethodGet, u, authHeaders(s, token))
}

type pageBody struct {
	Success bool              `json:"success"`
	Message string            `json:"message"`
	Items   []json.RawMessage `json:"items"`
	Cursor  *struct {
		Next *string `json:"next"`
	} `json:"cursor"`
}

func decodePage(t testing.TB, r reply) pageBody {
	t.Helper()
	if r.err != nil {
		t.Fatalf("request failed: %v", r.err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var p pageBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode page: %v: %.200s", err, r.body)
	}
	if !p.Success {
		t.Fatalf("success false: %s", r.body)
	}
	return p
}

type walkResult struct {
	items      []json.RawMessage
	pages      int
	emptyPages int // empty pages with a non-null next
}

// walk follows cursors the documented way until next is null.
func walk(t testing.TB, s *Server, token, path string, start, end string) walkResult {
	t.Helper()
	q := url.Values{}
	if start != "" {
		q.Set("start", start)
	}
	if end != "" {
		q.Set("end", end)
	}
	var res walkResult
	for {
		p := decodePage(t, get(t, s, token, path, q))
		res.pages++
		if p.Cursor == nil {
			t.Fatalf("page %d has no cursor object", res.pages)
		}
		res.items = append(res.items, p.Items...)
		if p.Cursor.Next == nil {
			return res
		}
		if len(p.Items) == 0 {
			res.emptyPages++
		}
		q.Set("cursor", *p.Cursor.Next)
		if res.pages > 100000 {
			t.Fatal("walk does not terminate")
		}
	}
}

type txFields struct {
	ID        string      `json:"_id"`
	Account   string      `json:"_account"`
	Date      string      `json:"date"`
	UpdatedAt string      `json:"updated_at"`
	Desc      string      `json:"description"`
	Amount    json.Number `json:"amount"`
}

func fields(t testing.TB, raw []byte) txFields {
	t.Helper()
	var f txFields
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&f); err != nil {
		t.Fatalf("decode transaction: %v: %s", err, raw)
	}
	return f
}

const ms = "2006-01-02T15:04:05.000Z07:00"

func iso(t time.Time) string { return t.UTC().Format(ms) }
