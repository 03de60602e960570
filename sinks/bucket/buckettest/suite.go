package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// Run runs the acceptance suite. newBucket must return a fresh, empty bucket
// for each call (each subtest calls it once) and arrange its cleanup with
// t.Cleanup.
func Run(t *testing.T, newBucket func(t *testing.T) bucket.Bucket) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newBucket(t))
		})
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, b bucket.Bucket)
}{
	{"GetMissingIsNotFound", testGetMissing},
	{"PutGetRoundTrip", testRoundTrip},
	{"AttrsSizeCRCGeneration", testAttrs},
	{"OverwriteIncreasesGeneration", testOverwrite},
	{"PutSameBytesIsIdempotent", testIdempotent},
	{"DoesNotExistCreateThenConflict", testDoesNotExist},
	{"ConditionalPutOfSameBytesConflicts", testSameBytesConflict},
	{"GenerationMatch", testGenerationMatch},
	{"Delete", testDelete},
	{"DeleteThenRecreateNewGeneration", testRecreate},
	{"InvalidConditionsRejected", testInvalidConditions},
	{"List", testList},
	{"ListFrom", testListFrom},
	{"InvalidNamesRejected", testInvalidNames},
	{"ConcurrentConditionalWriters", testConcurrentWriters},
	{"LargeObject", testLarge},
	{"ZeroByteObject", testZeroByte},
	{"ErrorsNameTheObject", testErrorsNameTheObject},
	{"GetRange", testGetRange},
	{"GetRangeGeneration", testGetRangeGeneration},
	{"GetRangeMissingIsNotFound", testGetRangeMissing},
}

func put(t *testing.T, b bucket.Bucket, name string, data []byte, cond bucket.Condition) bucket.Attrs {
	t.Helper()
	a, err := b.Put(context.Background(), name, data, cond)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes, %s): %v", name, len(data), cond, err)
	}
	checkAttrs(t, "Put", a, name, data)
	return a
}

func checkAttrs(t *testing.T, op string, a bucket.Attrs, name string, data []byte) {
	t.Helper()
	if a.Name != name || a.Size != int64(len(data)) || a.CRC32C != bucket.CRC32C(data) || a.Generation <= 0 {
		t.Fatalf("%s(%q) attrs = %+v, want name %q size %d crc32c %#x and a positive generation",
			op, name, a, name, len(data), bucket.CRC32C(data))
	}
}

func get(t *testing.T, b bucket.Bucket, name string) ([]byte, bucket.Attrs) {
	t.Helper()
	data, a, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	checkAttrs(t, "Get", a, name, data)
	return data, a
}

func testGetMissing(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	put(t, b, "other/x.json", []byte("{}"), bucket.Condition{})
	for _, name := range []string{"missing.parquet", "other/missing.json", "other", "no/such/dir/x"} {
		if _, _, err := b.Get(ctx, name); !bucket.IsNotFound(err) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", name, err)
		}
		if _, err := b.Attrs(ctx, name); !bucket.IsNotFound(err) {
			t.Errorf("Attrs(%q) error = %v, want ErrNotFound", name, err)
		}
	}
}

func testRoundTrip(t *testing.T, b bucket.Bucket) {
	tests := []struct {
		name string
		data []byte
	}{
		{"a.json", []byte(`{"run":"1"}`)},
		{"transactions/month=2024-01/part-000.parquet", []byte("PAR1\x00\x01\x02\xffPAR1")},
		{"deep/er/and/deeper/still/x.bin", bytes.Repeat([]byte{0xAB}, 4097)},
		{"unicode/ā-ē-ī-ō-ū.txt", []byte("Māori macrons")},
		{"spaces and=equals/x y.json", []byte("ok")},
	}
	for _, tc := range tests {
		input := append([]byte(nil), tc.data...)
		put(t, b, tc.name, input, bucket.Condition{})
		input[0] ^= 0xFF // Put must not keep the caller's slice
		got, _ := get(t, b, tc.name)
		if !bytes.Equal(got, tc.data) {
			t.Errorf("Get(%q) = %q, want %q", tc.name, got, tc.data)
		}
		got[0] ^= 0xFF // nor hand out its own
		if again, _ := get(t, b, tc.name); !bytes.Equal(again, tc.data) {
			t.Errorf("Get(%q) after mutating a returned slice = %q, want %q", tc.name, again, tc.data)
		}
	}
}

func testAttrs(t *testing.T, b bucket.Bucket) {
	data := []byte("123456789") // CRC-32C check value 0xE3069283
	if got := bucket.CRC32C(data); got != 0xE3069283 {
		t.Fatalf("CRC32C(123456789) = %#x, want 0xe3069283", got)
	}
	p := put(t, b, "check/value.txt", data, bucket.Condition{})
	a, err := b.Attrs(context.Background(), "check/value.txt")
	if err != nil {
		t.Fatal(err)
	}
	checkAttrs(t, "Attrs", a, "check/value.txt", data)
	if a.Generation != p.Generation || a.CRC32C != 0xE3069283 {
		t.Errorf("Attrs = %+v, want generation %d from Put and crc32c 0xe3069283", a, p.Generation)
	}
	if a.Updated.IsZero() {
		t.Errorf("Attrs.Updated is zero")
	}
	_, g := get(t, b, "check/value.txt")
	if g.Generation != p.Generation {
		t.Errorf("Get generation = %d, want %d", g.Generation, p.Generation)
	}
}

func testOverwrite(t *testing.T, b bucket.Bucket) {
	const name = "over/write.parquet"
	prev := int64(0)
	for i := range 5 {
		data := fmt.Appendf(nil, "version %d %s", i, bytes.Repeat([]byte("x"), i*100))
		a := put(t, b, name, data, bucket.Condition{})
		if a.Generation <= prev {
			t.Fatalf("Put #%d generation %d, want > %d", i, a.Generation, prev)
		}
		prev = a.Generation
		got, g := get(t, b, name)
		if !bytes.Equal(got, data) || g.Generation != a.Generation {
			t.Fatalf("Get after Put #%d = %q gen %d, want %q gen %d", i, got, g.Generation, data, a.Generation)
		}
	}
}

func testIdempotent(t *testing.T, b bucket.Bucket) {
	data := []byte("same bytes")
	a1 := put(t, b, "idem.json", data, bucket.Condition{})
	a2 := put(t, b, "idem.json", data, bucket.Condition{})
	if a2.Generation < a1.Generation {
		t.Errorf("second Put generation %d < first %d", a2.Generation, a1.Generation)
	}
	got, _ := get(t, b, "idem.json")
	if !bytes.Equal(got, data) {
		t.Errorf("Get = %q, want %q", got, data)
	}
}

func testDoesNotExist(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	first := put(t, b, "_manifests/run-1.json", []byte("first"), bucket.Condition{DoesNotExist: true})
	_, err := b.Put(ctx, "_manifests/run-1.json", []byte("second"), bucket.Condition{DoesNotExist: true})
	if !bucket.IsConflict(err) {
		t.Fatalf("second DoesNotExist Put error = %v, want ErrConflict", err)
	}
	got, a := get(t, b, "_manifests/run-1.json")
	if string(got) != "first" || a.Generation != first.Generation {
		t.Errorf("after conflict Get = %q gen %d, want %q gen %d (unchanged)", got, a.Generation, "first", first.Generation)
	}
}

// testSameBytesConflict: a conditional Put whose condition fails is a
// conflict even if the object already holds the same bytes; otherwise two
// writers of equal bytes (two lock holders writing the same document) would
// both win.
func testSameBytesConflict(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	data := []byte(`{"run_id":"r1"}`)
	first := put(t, b, "_locks/shard.json", data, bucket.Condition{DoesNotExist: true})
	second := put(t, b, "_locks/shard.json", data, bucket.Condition{GenerationMatch: first.Generation})
	for _, cond := range []bucket.Condition{{DoesNotExist: true}, {GenerationMatch: first.Generation}} {
		if a, err := b.Put(ctx, "_locks/shard.json", data, cond); !bucket.IsConflict(err) {
			t.Errorf("Put of the stored bytes with %s: attrs %+v, error %v; want ErrConflict", cond, a, err)
		}
	}
	if got, a := get(t, b, "_locks/shard.json"); !bytes.Equal(got, data) || a.Generation != second.Generation {
		t.Errorf("Get = %q gen %d, want generation %d unchanged", got, a.Generation, second.Generation)
	}
}

func testGenerationMatch(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	const name = "cas/part-000.parquet"
	g1 := put(t, b, name, []byte("v1"), bucket.Condition{})
	g2 := put(t, b, name, []byte("v2"), bucket.Condition{GenerationMatch: g1.Generation})
	if g2.Generation <= g1.Generation {
		t.Fatalf("GenerationMatch Put generation %d, want > %d", g2.Generation, g1.Generation)
	}
	tests := []struct {
		what string
		cond bucket.Condition
	}{
		{"stale generation", bucket.Condition{GenerationMatch: g1.Generation}},
		{"future generation", bucket.Condition{GenerationMatch: g2.Generation + 1000}},
		{"exists", bucket.Condition{DoesNotExist: true}},
	}
	for _, tc := range tests {
		if _, err := b.Put(ctx, name, []byte("lost update"), tc.cond); !bucket.IsConflict(err) {
			t.Errorf("Put with %s (%s) error = %v, want ErrConflict", tc.what, tc.cond, err)
		}
	}
	if _, err := b.Put(ctx, "cas/absent", []byte("x"), bucket.Condition{GenerationMatch: g2.Generation}); !bucket.IsConflict(err) {
		t.Errorf("GenerationMatch Put on a missing object error = %v, want ErrConflict", err)
	}
	if _, err := b.Attrs(ctx, "cas/absent"); !bucket.IsNotFound(err) {
		t.Errorf("failed conditional Put created the object: Attrs error = %v", err)
	}
	got, a := get(t, b, name)
	if string(got) != "v2" || a.Generation != g2.Generation {
		t.Errorf("after conflicts Get = %q gen %d, want v2 gen %d", got, a.Generation, g2.Generation)
	}
}

func testDelete(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	a := put(t, b, "del/plain", []byte("x"), bucket.Condition{})
	if err := b.Delete(ctx, "del/plain", bucket.Condition{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := b.Get(ctx, "del/plain"); !bucket.IsNotFound(err) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "del/plain", bucket.Condition{}); !bucket.IsNotFound(err) {
		t.Errorf("Delete of a missing object error = %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "del/plain", bucket.Condition{GenerationMatch: a.Generation}); !bucket.IsNotFound(err) {
		t.Errorf("conditional Delete of a missing object error = %v, want ErrNotFound", err)
	}

	c1 := put(t, b, "del/cond", []byte("1"), bucket.Condition{})
	c2 := put(t, b, "del/cond", []byte("2"), bucket.Condition{})
	if err := b.Delete(ctx, "del/cond", bucket.Condition{GenerationMatch: c1.Generation}); !bucket.IsConflict(err) {
		t.Fatalf("Delete with stale generation error = %v, want ErrConflict", err)
	}
	if got, _ := get(t, b, "del/cond"); string(got) != "2" {
		t.Fatalf("stale conditional Delete removed the object: Get = %q", got)
	}
	if err := b.Delete(ctx, "del/cond", bucket.Condition{GenerationMatch: c2.Generation}); err != nil {
		t.Fatalf("Delete with current generation: %v", err)
	}
	if _, err := b.Attrs(ctx, "del/cond"); !bucket.IsNotFound(err) {
		t.Errorf("Attrs after conditional Delete error = %v, want ErrNotFound", err)
	}
	if l, err := b.List(ctx, "del/"); err != nil || len(l) != 0 {
		t.Errorf("List(del/) after deletes = %v, %v; want empty", l, err)
	}
}

func testRecreate(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	a1 := put(t, b, "re/create", []byte("one"), bucket.Condition{})
	if err := b.Delete(ctx, "re/create", bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	a2 := put(t, b, "re/create", []byte("two"), bucket.Condition{DoesNotExist: true})
	if a2.Generation <= a1.Generation {
		t.Errorf("re-created generation %d, want > %d (a stale GenerationMatch must not succeed)", a2.Generation, a1.Generation)
	}
	if _, err := b.Put(ctx, "re/create", []byte("three"), bucket.Condition{GenerationMatch: a1.Generation}); !bucket.IsConflict(err) {
		t.Errorf("Put matching the deleted generation error = %v, want ErrConflict", err)
	}
}

func testInvalidConditions(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	a := put(t, b, "cond/x", []byte("x"), bucket.Condition{})
	bad := []bucket.Condition{
		{DoesNotExist: true, GenerationMatch: a.Generation},
		{GenerationMatch: -1},
	}
	for _, c := range bad {
		if _, err := b.Put(ctx, "cond/x", []byte("y"), c); !errors.Is(err, bucket.ErrInvalidCondition) {
			t.Errorf("Put with %+v error = %v, want ErrInvalidCondition", c, err)
		}
		if err := b.Delete(ctx, "cond/x", c); !errors.Is(err, bucket.ErrInvalidCondition) {
			t.Errorf("Delete with %+v error = %v, want ErrInvalidCondition", c, err)
		}
	}
	if err := b.Delete(ctx, "cond/x", bucket.Condition{DoesNotExist: true}); !errors.Is(err, bucket.ErrInvalidCondition) {
		t.Errorf("Delete with DoesNotExist error = %v, want ErrInvalidCondition", err)
	}
	if got, _ := get(t, b, "cond/x"); string(got) != "x" {
		t.Errorf("rejected calls changed the object: %q", got)
	}
}

func testList(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	names := []string{
		"transactions/month=2024-02/part-000.parquet",
		"transactions/month=2024-01/part-001.parquet",
		"transactions/month=2024-01/part-000.parquet",
		"transactions/month=2023-12/part-000.parquet",
		"transactions.json",
		"pending/part-000.parquet",
		"_dataset.json",
		"a.b",
		"a/b",
		"z",
	}
	data := map[string][]byte{}
	for i, n := range names {
		data[n] = fmt.Appendf(nil, "object %d %s", i, n)
		put(t, b, n, data[n], bucket.Condition{})
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"_dataset.json", "a.b", "a/b", "pending/part-000.parquet", "transactions.json",
			"transactions/month=2023-12/part-000.parquet", "transactions/month=2024-01/part-000.parquet",
			"transactions/month=2024-01/part-001.parquet", "transactions/month=2024-02/part-000.parquet", "z"}},
		{"transactions/", []string{"transactions/month=2023-12/part-000.parquet", "transactions/month=2024-01/part-000.parquet",
			"transactions/month=2024-01/part-001.parquet", "transactions/month=2024-02/part-000.parquet"}},
		{"transactions", []string{"transactions.json", "transactions/month=2023-12/part-000.parquet",
			"transactions/month=2024-01/part-000.parquet", "transactions/month=2024-01/part-001.parquet",
			"transactions/month=2024-02/part-000.parquet"}},
		{"transactions/month=2024-", []string{"transactions/month=2024-01/part-000.parquet",
			"transactions/month=2024-01/part-001.parquet", "transactions/month=2024-02/part-000.parquet"}},
		{"transactions/month=2024-01/part-001", []string{"transactions/month=2024-01/part-001.parquet"}},
		{"a", []string{"a.b", "a/b"}},
		{"nothing/", nil},
		{"transactions/month=2025-", nil},
	}
	for _, tc := range tests {
		got, err := b.List(ctx, tc.prefix)
		if err != nil {
			t.Errorf("List(%q): %v", tc.prefix, err)
			continue
		}
		var gotNames []string
		for _, a := range got {
			gotNames = append(gotNames, a.Name)
			if d, ok := data[a.Name]; ok {
				checkAttrs(t, "List", a, a.Name, d)
			}
		}
		if fmt.Sprint(gotNames) != fmt.Sprint(tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, gotNames, tc.want)
		}
	}
	for _, p := range []string{"/abs", "../up", "a//b", `a\b`} {
		if _, err := b.List(ctx, p); !bucket.IsInvalidName(err) {
			t.Errorf("List(%q) error = %v, want ErrInvalidName", p, err)
		}
	}
}

func testListFrom(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	names := []string{
		"_manifests/20261130T010000.000Z-s000-aa.json",
		"_manifests/20261201T010000.000Z-s001-bb.json",
		"_manifests/20261201T020000.000Z-s000-cc.json",
		"_manifests/20261202T010000.000Z-s000-dd.json",
		"_state/bucket-0000.json",
		"deletions/month=2026-10/x.parquet",
		"deletions/month=2026-11/y.parquet",
		"deletions/month=2026-12/z.parquet",
		"z",
	}
	data := map[string][]byte{}
	for i, n := range names {
		data[n] = fmt.Appendf(nil, "object %d %s", i, n)
		put(t, b, n, data[n], bucket.Condition{})
	}
	tests := []struct {
		prefix, start string
		want          []string
	}{
		{"_manifests/", "", names[:4]},
		{"_manifests/", "_manifests/20261201", names[1:4]},
		{"_manifests/", "_manifests/20261201T020000.000Z-s000-cc.json", names[2:4]}, // inclusive
		{"_manifests/", "_manifests/20261203", nil},
		{"_manifests/", "_a", names[:4]},                      // before the prefix: the whole prefix
		{"_manifests/", "_state/", nil},                       // after it: nothing
		{"deletions/", "deletions/month=2026-11", names[6:8]}, // across directories
		{"deletions/", "deletions/month=2026-11/z", names[7:8]},
		{"", "deletions/month=2026-12/", names[7:]},
	}
	for _, tc := range tests {
		got, err := b.ListFrom(ctx, tc.prefix, tc.start)
		if err != nil {
			t.Errorf("ListFrom(%q, %q): %v", tc.prefix, tc.start, err)
			continue
		}
		var gotNames []string
		for _, a := range got {
			gotNames = append(gotNames, a.Name)
			checkAttrs(t, "ListFrom", a, a.Name, data[a.Name])
		}
		if fmt.Sprint(gotNames) != fmt.Sprint(tc.want) {
			t.Errorf("ListFrom(%q, %q) = %q, want %q", tc.prefix, tc.start, gotNames, tc.want)
		}
	}
	if _, err := b.ListFrom(ctx, "../up", ""); !bucket.IsInvalidName(err) {
		t.Errorf("ListFrom(../up) error = %v, want ErrInvalidName", err)
	}
}

// InvalidNames are rejected by every implementation with ErrInvalidName.
var InvalidNames = []string{
	"", "/abs", "a/", "a//b", "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b",
	`a\b`, "nul\x00byte", "new\nline", "bad\xffutf8", string(bytes.Repeat([]byte("x"), bucket.MaxNameLen+1)),
}

func testInvalidNames(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	for _, name := range InvalidNames {
		if _, err := b.Put(ctx, name, []byte("x"), bucket.Condition{}); !bucket.IsInvalidName(err) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidName", name, err)
		}
		if _, _, err := b.Get(ctx, name); !bucket.IsInvalidName(err) {
			t.Errorf("Get(%q) error = %v, want ErrInvalidName", name, err)
		}
		if _, err := b.Attrs(ctx, name); !bucket.IsInvalidName(err) {
			t.Errorf("Attrs(%q) error = %v, want ErrInvalidName", name, err)
		}
		if err := b.Delete(ctx, name, bucket.Condition{}); !bucket.IsInvalidName(err) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidName", name, err)
		}
	}
	if l, err := b.List(ctx, ""); err != nil || len(l) != 0 {
		t.Errorf("after rejected Puts List = %v, %v; want empty", l, err)
	}
}

// testConcurrentWriters races N writers with the same precondition, round
// after round: exactly one must win each round and the stored bytes must be
// the winner's.
func testConcurrentWriters(t *testing.T, b bucket.Bucket) {
	const writers, rounds = 8, 4
	ctx := context.Background()
	const name = "race/part-000.parquet"
	cond := bucket.Condition{DoesNotExist: true}
	var prev int64
	for round := range rounds {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []int
			won     bucket.Attrs
			others  []error
		)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				<-start
				data := fmt.Appendf(nil, "round %d writer %d", round, w)
				a, err := b.Put(ctx, name, data, cond)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, w)
					won = a
				case !bucket.IsConflict(err):
					others = append(others, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(others) > 0 {
			t.Fatalf("round %d (%s): errors other than ErrConflict: %v", round, cond, others)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d (%s): %d winners %v, want exactly 1", round, cond, len(winners), winners)
		}
		got, a := get(t, b, name)
		want := fmt.Sprintf("round %d writer %d", round, winners[0])
		if string(got) != want || a.Generation != won.Generation || a.Generation <= prev {
			t.Fatalf("round %d: Get = %q gen %d, want %q gen %d (> %d)", round, got, a.Generation, want, won.Generation, prev)
		}
		prev = a.Generation
		cond = bucket.Condition{GenerationMatch: a.Generation}
	}
}

func testLarge(t *testing.T, b bucket.Bucket) {
	data := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(data); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	put(t, b, "big/8mib.parquet", data, bucket.Condition{DoesNotExist: true})
	got, _ := get(t, b, "big/8mib.parquet")
	if !bytes.Equal(got, data) {
		t.Fatalf("8 MiB round trip differs (got %d bytes)", len(got))
	}
	l, err := b.List(context.Background(), "big/")
	if err != nil || len(l) != 1 {
		t.Fatalf("List(big/) = %v, %v", l, err)
	}
	checkAttrs(t, "List", l[0], "big/8mib.parquet", data)
}

func testZeroByte(t *testing.T, b bucket.Bucket) {
	a := put(t, b, "empty/_SUCCESS", nil, bucket.Condition{DoesNotExist: true})
	if a.CRC32C != 0 || a.Size != 0 {
		t.Errorf("zero-byte attrs = %+v", a)
	}
	got, g := get(t, b, "empty/_SUCCESS")
	if len(got) != 0 || g.Generation != a.Generation {
		t.Errorf("Get = %q gen %d, want empty gen %d", got, g.Generation, a.Generation)
	}
	a2 := put(t, b, "empty/_SUCCESS", []byte{}, bucket.Condition{GenerationMatch: a.Generation})
	if a2.Generation <= a.Generation {
		t.Errorf("overwrite of empty object generation %d, want > %d", a2.Generation, a.Generation)
	}
}

func testErrorsNameTheObject(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	const name = "named/object-xyz.parquet"
	_, _, errGet := b.Get(ctx, name)
	_, errPut := b.Put(ctx, name, []byte("x"), bucket.Condition{GenerationMatch: 12345})
	errDel := b.Delete(ctx, name, bucket.Condition{})
	for _, err := range []error{errGet, errPut, errDel} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("error %v does not name %q", err, name)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte(b.String())) {
			t.Errorf("error %v does not name the bucket %s", err, b)
		}
	}
}

func testGetRange(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	const name = "ranged/part-000.parquet"
	a := put(t, b, name, data, bucket.Condition{})
	put(t, b, "ranged/empty", nil, bucket.Condition{})
	size := int64(len(data))
	tests := []struct {
		name           string
		gen            int64
		offset, length int64
		want           []byte
	}{
		{"start", 0, 0, 100, data[:100]},
		{"middle", 0, 4321, 1234, data[4321 : 4321+1234]},
		{"end", 0, size - 8, 8, data[size-8:]},
		{"whole", 0, 0, size, data},
		{"past the end is short", 0, size - 5, 100, data[size-5:]},
		{"starting at the end", 0, size, 10, nil},
		{"starting past the end", 0, size + 1000, 10, nil},
		{"empty range", 0, 10, 0, nil},
		{"current generation", a.Generation, 4096, 4096, data[4096:8192]},
	}
	for _, tc := range tests {
		got, err := b.GetRange(ctx, name, tc.gen, tc.offset, tc.length)
		if err != nil {
			t.Errorf("%s: GetRange(%q, gen %d, %d, %d): %v", tc.name, name, tc.gen, tc.offset, tc.length, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: GetRange(%q, gen %d, %d, %d) = %d bytes, want %d bytes", tc.name, name, tc.gen, tc.offset, tc.length, len(got), len(tc.want))
		}
		if len(got) > 0 {
			got[0] ^= 0xFF // the slice is the caller's
		}
	}
	if again, err := b.GetRange(ctx, name, 0, 0, 100); err != nil || !bytes.Equal(again, data[:100]) {
		t.Errorf("GetRange after mutating a returned slice = %d bytes, %v; want the first 100 bytes", len(again), err)
	}
	if got, err := b.GetRange(ctx, "ranged/empty", 0, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("GetRange of a zero-byte object = %q, %v; want no bytes", got, err)
	}
	for _, r := range [][2]int64{{-1, 10}, {0, -1}} {
		if _, err := b.GetRange(ctx, name, 0, r[0], r[1]); err == nil {
			t.Errorf("GetRange(offset %d, length %d) succeeded, want an error", r[0], r[1])
		}
	}
	for _, bad := range InvalidNames {
		if _, err := b.GetRange(ctx, bad, 0, 0, 1); !bucket.IsInvalidName(err) {
			t.Errorf("GetRange(%q) error = %v, want ErrInvalidName", bad, err)
		}
	}
}

// testGetRangeGeneration: a generation that is no longer current is ErrConflict,
// never the bytes of another version.
func testGetRangeGeneration(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	const name = "ranged/versions.parquet"
	v1 := put(t, b, name, []byte("version one: the first bytes"), bucket.Condition{})
	if got, err := b.GetRange(ctx, name, v1.Generation, 8, 3); err != nil || string(got) != "one" {
		t.Fatalf("GetRange(gen %d) = %q, %v; want \"one\"", v1.Generation, got, err)
	}
	v2 := put(t, b, name, []byte("version two: other bytes"), bucket.Condition{GenerationMatch: v1.Generation})
	got, err := b.GetRange(ctx, name, v1.Generation, 8, 3)
	if !bucket.IsConflict(err) {
		t.Errorf("GetRange(gen %d) after a new version = %q, %v; want ErrConflict", v1.Generation, got, err)
	}
	if err != nil && !strings.Contains(err.Error(), name) {
		t.Errorf("error %v does not name %q", err, name)
	}
	if got, err := b.GetRange(ctx, name, v2.Generation, 8, 3); err != nil || string(got) != "two" {
		t.Errorf("GetRange(gen %d) = %q, %v; want \"two\"", v2.Generation, got, err)
	}
	if got, err := b.GetRange(ctx, name, 0, 8, 3); err != nil || string(got) != "two" {
		t.Errorf("GetRange(gen 0) = %q, %v; want \"two\"", got, err)
	}
	if err := b.Delete(ctx, name, bucket.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetRange(ctx, name, v2.Generation, 0, 3); !bucket.IsNotFound(err) {
		t.Errorf("GetRange(gen %d) of a deleted object error = %v, want ErrNotFound", v2.Generation, err)
	}
}

func testGetRangeMissing(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	put(t, b, "other/x.json", []byte("{}"), bucket.Condition{})
	for _, name := range []string{"missing.parquet", "other/missing.json", "other", "no/such/dir/x"} {
		for _, gen := range []int64{0, 12345} {
			_, err := b.GetRange(ctx, name, gen, 0, 10)
			if !bucket.IsNotFound(err) {
				t.Errorf("GetRange(%q, gen %d) error = %v, want ErrNotFound", name, gen, err)
			}
			if err != nil && !strings.Contains(err.Error(), name) {
				t.Errorf("error %v does not name %q", err, name)
			}
		}
	}
}
