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

// Two writers racing on one object: only the first create succeeds, and an
// update conditioned on a generation that is no longer current is refused, so
// neither writer silently overwrites the other.
func ExampleCondition() {
	ctx := context.Background()
	var b bucket.Bucket = bucket.NewMemory()

	a, err := b.Put(ctx, "lock", []byte("writer A"), bucket.Condition{DoesNotExist: true})
	fmt.Println("A creates:", err == nil)
	_, err = b.Put(ctx, "lock", []byte("writer B"), bucket.Condition{DoesNotExist: true})
	fmt.Println("B creates too:", err == nil, "conflict:", bucket.IsConflict(err))

	// B reads A's version and replaces it on the condition that it is still current.
	_, seen, _ := b.Get(ctx, "lock")
	bAttrs, err := b.Put(ctx, "lock", []byte("writer B"), bucket.Condition{GenerationMatch: seen.Generation})
	fmt.Println("B replaces generation it read:", err == nil, "newer:", bAttrs.Generation > a.Generation)

	// A still holds the generation it wrote, which is no longer current.
	_, err = b.Put(ctx, "lock", []byte("writer A again"), bucket.Condition{GenerationMatch: a.Generation})
	fmt.Println("A replaces its stale generation:", err == nil, "conflict:", bucket.IsConflict(err))

	data, _, _ := b.Get(ctx, "lock")
	fmt.Println("holder:", string(data))
	// Output:
	// A creates: true
	// B creates too: false conflict: true
	// B replaces generation it read: true newer: true
	// A replaces its stale generation: false conflict: true
	// holder: writer B
}
