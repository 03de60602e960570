package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

func TestInOrder(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		n       int
		width   int
		failAt  int // -1: no read fails
		wantUse int // results used
	}{
		{name: "none", n: 0, width: 4, failAt: -1},
		{name: "fewer than the width", n: 3, width: 16, failAt: -1, wantUse: 3},
		{name: "many", n: 200, width: 16, failAt: -1, wantUse: 200},
		{name: "width one", n: 20, width: 1, failAt: -1, wantUse: 20},
		{name: "first fails", n: 50, width: 8, failAt: 0, wantUse: 0},
		{name: "one in the middle fails", n: 50, width: 8, failAt: 30, wantUse: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inFlight, most, running atomic.Int64
			var used []int
			err := inOrder(context.Background(), tt.n, tt.width, func(ctx context.Context, i int) (string, error) {
				running.Add(1)
				defer running.Add(-1)
				now := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					m := most.Load()
					if now <= m || most.CompareAndSwap(m, now) {
						break
					}
				}
				// Later reads finish first: the order of use must not follow them.
				time.Sleep(time.Duration((tt.n-i)%7) * 100 * time.Microsecond)
				if i == tt.failAt {
					return "", fmt.Errorf("read %d: %w", i, boom)
				}
				return fmt.Sprint(i), nil
			}, func(i int, v string) {
				if v != fmt.Sprint(i) {
					t.Errorf("result %d: %q", i, v)
				}
				used = append(used, i)
			})
			if tt.failAt >= 0 {
				if !errors.Is(err, boom) || err.Error() != fmt.Sprintf("read %d: boom", tt.failAt) {
					t.Errorf("error %v; want read %d's", err, tt.failAt)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(used) != tt.wantUse {
				t.Errorf("%d results used, want %d", len(used), tt.wantUse)
			}
			for i, u := range used {
				if u != i {
					t.Fatalf("results used in the order %v", used)
				}
			}
			if m := most.Load(); m > int64(tt.width) {
				t.Errorf("%d reads at once, want at most %d", m, tt.width)
			}
			if r := running.Load(); r != 0 {
				t.Errorf("%d reads still running after inOrder returned", r)
			}
		})
	}
}

// TestStateReadsOverlap: a shard reads the state objects of its buckets and every
// other bucket's users object, one GET each; on GCS their latency adds up (800
// buckets at 30 ms a GET: 24 s one after another), so they are read stateReads at
// once, and used in bucket order.
func TestStateReadsOverlap(t *testing.T) {
	ctx := context.Background()
	const buckets, shards = 64, 4
	mem := bucket.NewMemory()
	for bk := range buckets {
		fp := tokenFingerprint(tokenFor(bk))
		users := map[string]StateUser{fp: {TokenFP: fp, UserID: fmt.Sprintf("user_%03d", bk)}}
		if _, err := mem.Put(ctx, usersObject(bk), encodeUserLines(users), bucket.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	slow := &SlowBucket{Bucket: mem, Delay: 2 * time.Millisecond, Prefix: statePrefix}
	r := &runner{cfg: Config{Shards: shards, Shard: 1}, b: slow, ds: Dataset{Buckets: buckets, BucketBy: bucketByUser}}
	var err error
	if r.state, err = loadRunState(ctx, slow, buckets, 1, shards); err != nil {
		t.Fatal(err)
	}
	if slow.Most() < 2 {
		t.Errorf("the shard's own state objects: at most %d GET at once, want several", slow.Most())
	}
	slow.Reset()
	dir, err := r.loadDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slow.Most() < stateReads/2 || slow.Most() > stateReads {
		t.Errorf("the fleet's users objects: at most %d GETs at once, want %d to %d", slow.Most(), stateReads/2, stateReads)
	}
	for bk := range buckets {
		if _, ok := dir.lookup(tokenFingerprint(tokenFor(bk))); !ok {
			t.Errorf("bucket %d's token not in the directory", bk)
		}
	}
}

func tokenFor(bk int) akahu.Token { return akahu.Token(fmt.Sprintf("token_of_bucket_%03d", bk)) }
