package duckdb_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

type rtRec struct {
	mu   sync.Mutex
	last time.Time
	next http.RoundTripper
}

func (r *rtRec) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	r.mu.Lock()
	r.last = time.Now()
	r.mu.Unlock()
	return resp, err
}

func TestZZTimeline(t *testing.T) {
	srv := akahutest.NewServer(naivePopulation(300, 20*time.Millisecond))
	defer srv.Close()
	rec := &rtRec{next: http.DefaultTransport}
	client, _ := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: &http.Client{Transport: rec}})
	var tokens []akahu.Token
	for _, u := range srv.Users() {
		tokens = append(tokens, akahu.Token(u.Token))
	}
	o := srv.Options()
	base, began := time.Date(o.To.Year(), o.To.Month(), o.To.Day()+1, 9, 0, 0, 0, o.To.Location()), time.Now()
	cfg := pipeline.Config{Out: newNaiveBucket(&testing.B{}), Source: client, Users: tokens,
		Workers: naiveConcurrency, Now: func() time.Time { return base.Add(time.Since(began)) }}
	cfg.Start, cfg.End = o.From.Format(time.DateOnly), o.To.Format(time.DateOnly)
	t0 := time.Now()
	fmt.Println("start", t0.Format("15:04:05.000"))
	_, err := pipeline.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("last response", rec.last.Format("15:04:05.000"), "end", time.Now().Format("15:04:05.000"), time.Since(t0))
}
