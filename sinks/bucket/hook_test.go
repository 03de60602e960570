package bucket

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWithHook: the hook sees every Put and Delete, before it reaches the bucket, and
// nothing else; CleanTemp still reaches a Local underneath.
func TestWithHook(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	var seen []string
	b := WithHook(l, func(name string) {
		_, _, err := l.Get(ctx, name)
		seen = append(seen, fmt.Sprintf("%s exists=%v", name, err == nil))
	})
	if _, err := b.Put(ctx, "a.json", []byte("1"), Condition{DoesNotExist: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "a.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Attrs(ctx, "a.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a.json", Condition{}); err != nil {
		t.Fatal(err)
	}
	if want := "[a.json exists=false a.json exists=true]"; fmt.Sprint(seen) != want {
		t.Errorf("hook saw %v, want %s (each write once, before it happens)", seen, want)
	}
	if WithHook(l, nil) != Bucket(l) {
		t.Error("WithHook(b, nil) is not b itself")
	}
	tmp := filepath.Join(l.Dir(), ".x.json.tmp-1")
	if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := b.(TempCleaner).CleanTemp(ctx, 0)
	if err != nil || fmt.Sprint(removed) != "[.x.json.tmp-1]" {
		t.Errorf("CleanTemp through the hook = %q, %v", removed, err)
	}
	if removed, err := WithHook(NewMemory(), func(string) {}).(TempCleaner).CleanTemp(ctx, 0); err != nil || len(removed) != 0 {
		t.Errorf("CleanTemp over a Memory bucket = %q, %v; want nothing", removed, err)
	}
}
