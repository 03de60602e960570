package bucket_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// A read-modify-write that never loses another writer's update: write on
// the condition that the generation read is still current, and on conflict
// read again.
func Example_compareAndSwap() {
	ctx := context.Background()
	var b bucket.Bucket = bucket.NewMemory()
	if _, err := b.Put(ctx, "counter", []byte("41"), bucket.Condition{DoesNotExist: true}); err != nil {
		panic(err)
	}
	for {
		data, a, err := b.Get(ctx, "counter")
		if err != nil {
			panic(err)
		}
		n, _ := strconv.Atoi(string(data))
		_, err = b.Put(ctx, "counter", []byte(strconv.Itoa(n+1)), bucket.Condition{GenerationMatch: a.Generation})
		if bucket.IsConflict(err) {
			continue // someone else wrote first: start again from their version
		}
		if err != nil {
			panic(err)
		}
		break
	}
	data, _, _ := b.Get(ctx, "counter")
	_, _, err := b.Get(ctx, "missing")
	fmt.Println(string(data), bucket.IsNotFound(err))
	// Output: 42 true
}
