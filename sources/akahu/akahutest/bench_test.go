package akahutest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"runtime"
	"testing"
	"time"
)

// discard is a minimal http.ResponseWriter for in-process benchmarks.
type discard struct {
	h      http.Header
	status int
	body   []byte
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(s int)           { d.status = s }
func (d *discard) Write(b []byte) (int, error) { d.body = append(d.body[:0], b...); return len(b), nil }

// largeOptions is about 2M settled transactions: 200 users x 3 accounts with
// TRANSACTIONS x 24 months x 139.
var largeOptions = Options{Seed: 1, Users: 200, AccountsPerUser: 4, TxPerAccountPerMonth: 139}

// BenchmarkServePages serves account pages in-process, cycling through a
// walk over the whole history: the fake's own cost per page.
func BenchmarkServePages(b *testing.B) {
	f := New(largeOptions)
	u := f.Users()[0]
	acc := f.AccountIDs(u.ID)[0]
	base := "/v1/accounts/" + acc + "/transactions"
	q := url.Values{"start": {"2024-01-01"}, "end": {"2027-01-01"}}
	req, _ := http.NewRequest(http.MethodGet, base+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+u.Token)
	req.Header.Set("X-Akahu-Id", f.AppToken())
	w := &discard{h: http.Header{}}
	var bytes, items int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		f.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d: %s", w.status, w.body)
		}
		var p struct {
			Items  []json.RawMessage
			Cursor struct{ Next *string }
		}
		b.StopTimer()
		if err := json.Unmarshal(w.body, &p); err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(w.body))
		items += int64(len(p.Items))
		next := q
		if p.Cursor.Next != nil {
			next = url.Values{"start": q["start"], "end": q["end"], "cursor": {*p.Cursor.Next}}
		}
		req.URL.RawQuery = next.Encode()
		b.StartTimer()
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "pages/s")
	b.ReportMetric(float64(items)/sec, "tx/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "B/page")
}

// BenchmarkServePagesHTTP is the same over loopback HTTP with keep-alive,
// several walkers in parallel (all-accounts endpoint of different users).
func BenchmarkServePagesHTTP(b *testing.B) {
	s := NewServer(largeOptions)
	defer s.Close()
	users := s.Users()
	client := s.Client()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := users[int(time.Now().UnixNano())%len(users)]
		q := url.Values{"start": {"2025-01-01"}, "end": {"2026-01-01"}}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/transactions?"+q.Encode(), nil)
			req.Header.Set("Authorization", "Bearer "+u.Token)
			req.Header.Set("X-Akahu-Id", s.AppToken())
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			var p struct{ Cursor struct{ Next *string } }
			err = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				b.Errorf("status %d: %v", resp.StatusCode, err)
				return
			}
			if p.Cursor.Next != nil {
				q.Set("cursor", *p.Cursor.Next)
			} else {
				q.Del("cursor")
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}

// BenchmarkNewLarge builds the ~2M-transaction population and reports the
// heap it keeps: generation is lazy, so this stays a few MiB.
func BenchmarkNewLarge(b *testing.B) {
	for i := 0; i < b.N; i++ {
		New(largeOptions)
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := New(largeOptions)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(g.TotalSettledAll()), "tx")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMiB")
	runtime.KeepAlive(g)
}

// fleetOptions is the fleet benchmark's largest population: 20,000 users × 3
// accounts (two with TRANSACTIONS), ~1 transaction a month, every 10th account ~150.
var fleetOptions = Options{Seed: 1, Users: 20000, AccountsPerUser: 3, TxPerAccountPerMonth: 1,
	DenseEvery: 10, DenseTxPerAccountPerMonth: 150}

// BenchmarkNewFleet builds the fleet population (pipeline's BenchmarkFleet holds
// it in the parent process while the shards run in children) and reports the heap
// it keeps, per account too.
func BenchmarkNewFleet(b *testing.B) {
	for i := 0; i < b.N; i++ {
		New(fleetOptions)
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := New(fleetOptions)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc - before.HeapAlloc)
	accounts := float64(fleetOptions.Users * fleetOptions.AccountsPerUser)
	b.ReportMetric(heap/(1<<20), "heapMiB")
	b.ReportMetric(heap/accounts, "heapB/account")
	runtime.KeepAlive(g)
}
