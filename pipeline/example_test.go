package pipeline_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/akahu-etl/akahu-parquet/pipeline"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

// A backfill of one user's two accounts from the fake Akahu into a memory
// bucket, then the same run again: the second finds every row unchanged and
// uploads nothing. A transaction Akahu then drops becomes a deletion.
func ExampleRun() {
	ctx := context.Background()
	nz, _ := time.LoadLocation("Pacific/Auckland")
	srv := akahutest.NewServer(akahutest.Options{
		Seed: 3, Users: 1, AccountsPerUser: 2, TxPerAccountPerMonth: 10, PendingPerAccount: -1,
		From: time.Date(2025, 11, 1, 0, 0, 0, 0, nz), To: time.Date(2026, 1, 31, 0, 0, 0, 0, nz),
	})
	defer srv.Close()
	client, err := akahu.New(akahu.Config{BaseURL: srv.URL, AppToken: akahu.Token(srv.AppToken()), HTTPClient: srv.Client()})
	if err != nil {
		log.Fatal(err)
	}
	user := srv.Users()[0]

	// A clock that starts the morning after the last posting and ticks a
	// millisecond a reading, so run ids keep their order.
	var mu sync.Mutex
	now := time.Date(2026, 2, 1, 9, 0, 0, 0, nz)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}

	out := bucket.NewMemory()
	cfg := pipeline.Config{
		Out: out, Source: client, Users: []akahu.Token{akahu.Token(user.Token)},
		Start: "2025-11-01", End: "2026-01-31", Now: clock,
	}
	report := func(m *pipeline.Manifest) {
		byKind := map[string]int{}
		for _, o := range m.Objects {
			byKind[o.Kind]++
		}
		fmt.Printf("%d inserted, %d unchanged, %d deleted; %d objects uploaded (transactions %d, deletions %d, accounts %d)\n",
			m.Counts.Inserted, m.Counts.Unchanged, m.Counts.Deleted, m.Uploads.Objects,
			byKind["transactions"], byKind["deletions"], byKind["accounts"])
	}

	m, err := pipeline.Run(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	report(m)
	for _, o := range m.Objects {
		fmt.Println(" ", o.Op, o.Path, o.Rows, "rows")
	}
	fmt.Println("inserted = Akahu's settled rows:", m.Counts.Inserted == int64(srv.TotalSettledAll()))

	m, err = pipeline.Run(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	report(m)

	acc := srv.AccountIDs(user.ID)[0]
	gone := srv.Settled(acc, time.Date(2025, 12, 1, 0, 0, 0, 0, nz), time.Date(2026, 1, 1, 0, 0, 0, 0, nz))[0]
	if err := srv.DeleteTransaction(gone.ID); err != nil {
		log.Fatal(err)
	}
	m, err = pipeline.Run(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	report(m)
	fmt.Println("tombstone:", m.Deleted[0].ID == gone.ID, m.Deleted[0].Reason)
	// Output:
	// 55 inserted, 0 unchanged, 0 deleted; 4 objects uploaded (transactions 3, deletions 0, accounts 1)
	//   put accounts/snapshot_date=2026-02-01/part-000.parquet 2 rows
	//   put transactions/month=2025-11/part-000.parquet 16 rows
	//   put transactions/month=2025-12/part-000.parquet 19 rows
	//   put transactions/month=2026-01/part-000.parquet 20 rows
	// inserted = Akahu's settled rows: true
	// 0 inserted, 55 unchanged, 0 deleted; 0 objects uploaded (transactions 0, deletions 0, accounts 0)
	// 0 inserted, 54 unchanged, 1 deleted; 2 objects uploaded (transactions 1, deletions 1, accounts 0)
	// tombstone: true deleted
}
