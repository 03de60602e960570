package pipeline

import (
	"context"
	"maps"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// getCounter counts whole-object reads.
type getCounter struct {
	bucket.Bucket
	gets int
}

func (g *getCounter) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	g.gets++
	return g.Bucket.Get(ctx, name)
}

// TestStateCacheByGeneration: a cached state object is used only at the generation
// the caller listed; any other generation is read again, and what is read replaces
// the cached copy.
func TestStateCacheByGeneration(t *testing.T) {
	ctx := context.Background()
	b := &getCounter{Bucket: bucket.NewMemory()}
	name := usersObject(3)
	put := func(users map[string]StateUser) int64 {
		a, err := b.Put(ctx, name, encodeUserLines(users), bucket.Condition{})
		if err != nil {
			t.Fatal(err)
		}
		return a.Generation
	}
	v1 := map[string]StateUser{"fp1": {TokenFP: "fp1", UserID: "user_1"}}
	v2 := map[string]StateUser{"fp1": {TokenFP: "fp1", UserID: "user_1"}, "fp2": {TokenFP: "fp2", UserID: "user_2"}}
	cache := NewStateCache()
	read := func(listed int64) (map[string]StateUser, int64, int64) {
		t.Helper()
		got := map[string]StateUser{}
		var gen, size int64
		if err := readLinesCached(ctx, b, cache, name, listed, &gen, &size, func(l stateLine) { got[l.User.TokenFP] = *l.User }); err != nil {
			t.Fatal(err)
		}
		return got, gen, size
	}
	g1 := put(v1)
	for _, c := range []struct {
		step   string
		listed func() int64
		want   map[string]StateUser
		gets   int // reads so far
	}{
		{"first read", func() int64 { return g1 }, v1, 1},
		{"unchanged", func() int64 { return g1 }, v1, 1},
		{"rewritten", func() int64 { return put(v2) }, v2, 2},
		{"unchanged again", func() int64 { a, _ := b.Attrs(ctx, name); return a.Generation }, v2, 2},
		{"listed before the rewrite", func() int64 { return g1 }, v2, 3},
		{"no generation listed", func() int64 { return 0 }, v2, 4},
	} {
		listed := c.listed()
		got, gen, size := read(listed)
		if !maps.Equal(got, c.want) {
			t.Errorf("%s: read %v, want %v", c.step, got, c.want)
		}
		if b.gets != c.gets {
			t.Errorf("%s: %d reads so far, want %d", c.step, b.gets, c.gets)
		}
		cur, _ := b.Attrs(ctx, name)
		if gen != cur.Generation {
			t.Errorf("%s: generation %d, want the object's %d", c.step, gen, cur.Generation)
		}
		if fromCache := listed == cur.Generation && c.step != "first read" && c.step != "rewritten"; fromCache != (size == 0) {
			t.Errorf("%s: %d bytes counted as read", c.step, size)
		}
	}
}

// TestStateCacheForgetsDeleted: an object the cache holds that a later listing no
// longer names (a shard's resolved object, removed when its last line was pruned;
// after a fleet's first run it names most of the fleet) leaves the cache, and the
// objects still listed stay.
func TestStateCacheForgetsDeleted(t *testing.T) {
	ctx := context.Background()
	b := &getCounter{Bucket: bucket.NewMemory()}
	cache := NewStateCache()
	names := []string{resolvedObject(0, 4), resolvedObject(1, 4)}
	for i, name := range names {
		users := map[string]StateUser{"fp": {TokenFP: "fp", UserID: "user_" + string(rune('a'+i))}}
		if _, err := b.Put(ctx, name, encodeUserLines(users), bucket.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	// A users object of a bucket, under the other prefix the cache keeps.
	if _, err := b.Put(ctx, usersObject(2), encodeUserLines(map[string]StateUser{"fp2": {TokenFP: "fp2", UserID: "user_2"}}), bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	var gen, size int64
	if err := readLinesCached(ctx, b, cache, usersObject(2), 0, &gen, &size, func(stateLine) {}); err != nil {
		t.Fatal(err)
	}
	read := func() (seen []string) {
		t.Helper()
		if err := readResolved(ctx, b, cache, func(name string, _, _ int64, _ map[string]StateUser) { seen = append(seen, name) }); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if got := read(); len(got) != 2 || len(cache.objs) != 3 {
		t.Fatalf("read %v, cached %d objects: want both resolved objects read and cached beside the users object", got, len(cache.objs))
	}
	if err := b.Delete(ctx, names[0], bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	gets := b.gets
	if got := read(); len(got) != 1 || got[0] != names[1] {
		t.Errorf("read %v after %s went, want only %s", got, names[0], names[1])
	}
	if b.gets != gets {
		t.Errorf("%d reads of unchanged objects, want none", b.gets-gets)
	}
	if _, ok := cache.objs[names[0]]; ok {
		t.Errorf("the cache still holds %s after a listing without it", names[0])
	}
	if _, ok := cache.objs[names[1]]; !ok {
		t.Errorf("the cache lost %s, still listed", names[1])
	}
	if _, ok := cache.objs[usersObject(2)]; !ok {
		t.Errorf("the cache lost %s, under another prefix", usersObject(2))
	}
}
