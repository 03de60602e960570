package akahu_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// A tiny stand-in for Akahu: two pages of one account's transactions.
func exampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("cursor") == "" {
			fmt.Fprint(w, `{"success":true,"items":[{"_id":"trans_2","amount":-5.5},{"_id":"trans_1","amount":100}],"cursor":{"next":"p2"}}`)
			return
		}
		fmt.Fprint(w, `{"success":true,"items":[{"_id":"trans_0","amount":-1.25}],"cursor":{"next":null}}`)
	}))
}

func Example() {
	srv := exampleServer()
	defer srv.Close()

	client, err := akahu.New(akahu.Config{
		BaseURL:  srv.URL + "/v1", // plain http is accepted only for loopback
		AppToken: akahu.Token("app_token_example"),
	})
	if err != nil {
		log.Fatal(err)
	}
	user := akahu.Token("user_token_example")
	fmt.Println("user token prints as", user)

	nz, _ := time.LoadLocation("Pacific/Auckland")
	w := akahu.LocalDates(time.Date(2024, 1, 1, 0, 0, 0, 0, nz), time.Date(2024, 1, 31, 0, 0, 0, 0, nz), nz)
	fmt.Println("window", w)

	err = client.Transactions(context.Background(), user, "acc_1", w, func(p akahu.Page) error {
		fmt.Printf("page %d: %d items\n", p.Index, len(p.Items))
		for _, item := range p.Items {
			fmt.Println(" ", string(item)) // copy the bytes if you keep them
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("requests:", client.Stats().Requests)
	// Output:
	// user token prints as [REDACTED]
	// window 2023-12-31T10:59:59.999Z..2024-01-31T10:59:59.999Z
	// page 0: 2 items
	//   {"_id":"trans_2","amount":-5.5}
	//   {"_id":"trans_1","amount":100}
	// page 1: 1 items
	//   {"_id":"trans_0","amount":-1.25}
	// requests: 2
}
