package akahutest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

func ExampleNewServer() {
	s := akahutest.NewServer(akahutest.Options{Seed: 1, Users: 1, PageSize: 50})
	defer s.Close()
	u := s.Users()[0]

	get := func(path string, q url.Values, v any) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path+"?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+u.Token)
		req.Header.Set("X-Akahu-Id", s.AppToken())
		resp, err := s.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			panic(err)
		}
	}

	var accounts struct {
		Items []struct {
			ID, Type, Status string
			Attributes       []string
		}
	}
	get("/accounts", nil, &accounts)
	for _, a := range accounts.Items {
		fmt.Println(a.Type, a.Status, slices.Contains(a.Attributes, "TRANSACTIONS"))
	}

	// Walk one account's January 2026 (local dates) until next is null.
	acc := accounts.Items[0].ID
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("NZDT", 13*3600)).Add(-time.Millisecond)
	end := time.Date(2026, 2, 1, 0, 0, 0, 0, time.FixedZone("NZDT", 13*3600)).Add(-time.Millisecond)
	q := url.Values{"start": {start.Format(time.RFC3339Nano)}, "end": {end.Format(time.RFC3339Nano)}}
	n, pages := 0, 0
	for {
		var page struct {
			Items  []json.RawMessage
			Cursor struct{ Next *string }
		}
		get("/accounts/"+acc+"/transactions", q, &page)
		n, pages = n+len(page.Items), pages+1
		if page.Cursor.Next == nil {
			break
		}
		q.Set("cursor", *page.Cursor.Next)
	}
	fmt.Println(n == len(s.Settled(acc, start, end)), pages > 0)
	// Output:
	// CHECKING ACTIVE true
	// SAVINGS INACTIVE true
	// KIWISAVER ACTIVE false
	// CREDITCARD ACTIVE true
	// true true
}
