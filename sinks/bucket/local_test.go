package bucket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newLocal(t testing.TB) *Local {
	t.Helper()
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLocalTempFileInvisible inspects the directory while a Put is between
// writing its temp file and renaming it: the temp file must not match the
// globs analysts use, nor show in List, and the old version must still be
// what a reader sees.
func TestLocalTempFileInvisible(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	const name = "transactions/month=2024-01/part-000.parquet"
	if _, err := l.Put(ctx, name, []byte("old"), Condition{}); err != nil {
		t.Fatal(err)
	}
	checked := false
	l.writeData = func(f *os.File, data []byte) error {
		checked = true
		base := filepath.Base(f.Name())
		if !strings.HasPrefix(base, ".part-000.parquet.tmp-") {
			t.Errorf("temp file %q not named .<base>.tmp-<random>", base)
		}
		if filepath.Dir(f.Name()) != filepath.Dir(l.path(name)) {
			t.Errorf("temp file %q not in the target's directory", f.Name())
		}
		for _, glob := range []string{"*.parquet", "*.json", "part-*"} {
			if ok, _ := filepath.Match(glob, base); ok {
				t.Errorf("temp file %q matches %s", base, glob)
			}
		}
		if err := writeAll(f, data[:len(data)/2]); err != nil { // half written...
			return err
		}
		got, _, err := l.Get(ctx, name)
		if err != nil || string(got) != "old" {
			t.Errorf("mid-Put Get = %q, %v; want the old bytes", got, err)
		}
		list, err := l.List(ctx, "")
		if err != nil || len(list) != 1 || list[0].Name != name {
			t.Errorf("mid-Put List = %+v, %v; want only %s", list, err, name)
		}
		tmp, err := l.TempFiles(ctx)
		if err != nil || len(tmp) != 1 || !strings.HasSuffix(f.Name(), filepath.FromSlash(tmp[0])) {
			t.Errorf("mid-Put TempFiles = %q, %v; want %s", tmp, err, f.Name())
		}
		return writeAll(f, data[len(data)/2:])
	}
	if _, err := l.Put(ctx, name, []byte("new bytes"), Condition{}); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("hook not called")
	}
	if got, _, _ := l.Get(ctx, name); string(got) != "new bytes" {
		t.Errorf("Get = %q", got)
	}
	if tmp, _ := l.TempFiles(ctx); len(tmp) != 0 {
		t.Errorf("temp files left: %q", tmp)
	}
}

// TestLocalFailedWrite injects write failures: the error names the object,
// keeps the OS error, has the right class, and leaves the previous version
// and no temp file behind.
func TestLocalFailedWrite(t *testing.T) {
	tests := []struct {
		errno      syscall.Errno
		permission bool
	}{
		{syscall.ENOSPC, false},
		{syscall.EDQUOT, false},
		{syscall.EIO, false},
		{syscall.EACCES, true},
		{syscall.EPERM, true},
		{syscall.EROFS, true},
	}
	for _, tc := range tests {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			ctx := context.Background()
			l := newLocal(t)
			const name = "a/b/part-000.parquet"
			before, err := l.Put(ctx, name, []byte("previous"), Condition{})
			if err != nil {
				t.Fatal(err)
			}
			l.writeData = func(f *os.File, data []byte) error {
				_ = writeAll(f, data[:3])
				return &os.PathError{Op: "write", Path: f.Name(), Err: tc.errno}
			}
			_, err = l.Put(ctx, name, []byte("replacement"), Condition{})
			if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), l.String()) {
				t.Fatalf("error = %v, want %v naming %q in %s", err, tc.errno, name, l)
			}
			if IsPermission(err) != tc.permission || IsTransient(err) || IsConflict(err) || IsNotFound(err) {
				t.Errorf("error %v: IsPermission = %v, want %v (and no other class)", err, IsPermission(err), tc.permission)
			}
			got, a, err := l.Get(ctx, name)
			if err != nil || string(got) != "previous" || a.Generation != before.Generation {
				t.Errorf("after failure Get = %q gen %d, %v; want the previous version", got, a.Generation, err)
			}
			if tmp, _ := l.TempFiles(ctx); len(tmp) != 0 {
				t.Errorf("temp files left: %q", tmp)
			}
		})
	}
}

// TestLocalReadOnlyDirectory uses real permissions (meaningless as root).
func TestLocalReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; TestLocalFailedWrite covers the mapping")
	}
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.Put(ctx, "d/x", []byte("x"), Condition{}); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(l.Dir(), "d")
	if err := os.Chmod(d, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(d, 0o755) })
	if _, err := l.Put(ctx, "d/x", []byte("y"), Condition{}); !IsPermission(err) || !strings.Contains(err.Error(), "d/x") {
		t.Errorf("Put into read-only directory error = %v, want ErrPermission naming d/x", err)
	}
}

func TestLocalReservedNames(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, name := range []string{LockFileName, WritersFileName, ".x.parquet.tmp-123", "a/.part-000.parquet.tmp-99"} {
		if _, err := l.Put(ctx, name, []byte("x"), Condition{}); !IsInvalidName(err) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidName", name, err)
		}
	}
	// Hidden names that are not temp files are ordinary objects.
	if _, err := l.Put(ctx, "a/.hidden", []byte("x"), Condition{}); err != nil {
		t.Errorf("Put(a/.hidden): %v", err)
	}
}

func TestLocalTempFilesAndCleanTemp(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.Put(ctx, "t/month=2024-01/part-000.parquet", []byte("data"), Condition{}); err != nil {
		t.Fatal(err)
	}
	// What a process killed mid-Put leaves: one old temp file, one recent.
	old := filepath.Join(l.Dir(), "t", "month=2024-01", ".part-000.parquet.tmp-111")
	recent := filepath.Join(l.Dir(), "t", ".part-001.parquet.tmp-222")
	for _, p := range []string{old, recent} {
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	list, err := l.List(ctx, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v; want only the object", list, err)
	}
	tmp, err := l.TempFiles(ctx)
	want := []string{"t/.part-001.parquet.tmp-222", "t/month=2024-01/.part-000.parquet.tmp-111"}
	if err != nil || fmt.Sprint(tmp) != fmt.Sprint(want) {
		t.Fatalf("TempFiles = %q, %v; want %q", tmp, err, want)
	}
	removed, err := l.CleanTemp(ctx, time.Hour)
	if err != nil || fmt.Sprint(removed) != fmt.Sprint(want[1:]) {
		t.Fatalf("CleanTemp(1h) = %q, %v; want %q", removed, err, want[1:])
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("recent temp file removed: %v", err)
	}
	removed, err = l.CleanTemp(ctx, 0)
	if err != nil || fmt.Sprint(removed) != fmt.Sprint(want[:1]) {
		t.Fatalf("CleanTemp(0) = %q, %v; want %q", removed, err, want[:1])
	}
	if tmp, _ := l.TempFiles(ctx); len(tmp) != 0 {
		t.Errorf("TempFiles after cleaning = %q", tmp)
	}
}

// TestLocalCRCCacheFollowsContent replaces a file behind the bucket's back:
// Attrs and List must report the new bytes' CRC32C, not a cached one.
func TestLocalCRCCacheFollowsContent(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if _, err := l.Put(ctx, "x.json", []byte(`{"a":1}`), Condition{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := os.WriteFile(l.path("x.json"), []byte(`{"a":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := l.Attrs(ctx, "x.json")
	if err != nil || a.CRC32C != CRC32C([]byte(`{"a":2}`)) {
		t.Errorf("Attrs after external rewrite = %+v, %v; want crc32c of the new bytes", a, err)
	}
	list, err := l.List(ctx, "")
	if err != nil || len(list) != 1 || list[0].CRC32C != a.CRC32C {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func TestLocalContextCancelled(t *testing.T) {
	l := newLocal(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Put(ctx, "x", []byte("x"), Condition{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled context error = %v", err)
	}
	// A writer waiting for the lock gives up when its context ends.
	unlock, err := l.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Put(ctx, "x", []byte("x"), Condition{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put blocked on the lock error = %v, want deadline exceeded", err)
	}
	if tmp, _ := l.TempFiles(context.Background()); len(tmp) != 0 {
		t.Errorf("temp files left: %q", tmp)
	}
}

// Cross-process compare-and-swap: several processes increment one counter
// object with read-modify-conditional-write loops. Any lost update shows up
// as a final count below the number of increments.

const (
	helperEnv   = "BUCKET_TEST_HELPER_DIR"
	incrementsN = 40
)

func TestLocalHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper for TestLocalCrossProcessCAS")
	}
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := increment(context.Background(), l, incrementsN); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// increment adds n to the counter object with compare-and-swap.
func increment(ctx context.Context, l *Local, n int) error {
	for done := 0; done < n; {
		data, a, err := l.Get(ctx, "counter")
		if err != nil {
			return err
		}
		v, err := strconv.Atoi(string(data))
		if err != nil {
			return fmt.Errorf("counter holds %q: %w", data, err)
		}
		_, err = l.Put(ctx, "counter", []byte(strconv.Itoa(v+1)), Condition{GenerationMatch: a.Generation})
		switch {
		case err == nil:
			done++
		case !IsConflict(err):
			return err
		}
	}
	return nil
}

func TestLocalCrossProcessCAS(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const procs = 3
	l := newLocal(t)
	if _, err := l.Put(context.Background(), "counter", []byte("0"), Condition{DoesNotExist: true}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, procs)
	out := make([][]byte, procs)
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLocalHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+l.Dir())
			out[i], errs[i] = cmd.CombinedOutput()
		})
	}
	// This process competes too.
	if err := increment(context.Background(), l, incrementsN); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range procs {
		if errs[i] != nil {
			t.Fatalf("helper %d: %v\n%s", i, errs[i], out[i])
		}
	}
	data, _, err := l.Get(context.Background(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	want := incrementsN * (procs*2 + 1)
	if string(data) != strconv.Itoa(want) {
		t.Errorf("counter = %s after %d increments: updates were lost", data, want)
	}
}

// TestLocalGenerationStrictlyIncreases writes one object many times as fast
// as possible: each generation must exceed the last even when the clock
// does not advance between writes.
func TestLocalGenerationStrictlyIncreases(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	prev := int64(0)
	for i := range 200 {
		a, err := l.Put(ctx, "g", []byte{byte(i)}, Condition{})
		if err != nil {
			t.Fatal(err)
		}
		if a.Generation <= prev {
			t.Fatalf("write %d: generation %d after %d", i, a.Generation, prev)
		}
		prev = a.Generation
	}
	// A generation far in the future (clock stepped back since) still
	// increases.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(l.path("g"), future, future); err != nil {
		t.Fatal(err)
	}
	a, err := l.Put(ctx, "g", []byte("after"), Condition{GenerationMatch: future.UnixNano()})
	if err != nil || a.Generation <= future.UnixNano() {
		t.Fatalf("Put after future mtime = %+v, %v; want generation > %d", a, err, future.UnixNano())
	}
	if got, b, _ := l.Get(ctx, "g"); !bytes.Equal(got, []byte("after")) || b.Generation != a.Generation {
		t.Errorf("Get = %q gen %d", got, b.Generation)
	}
}

// Crash safety: a helper process rewrites self-checking objects in a loop
// and is killed with SIGKILL at a random instant. Every object must then be
// some complete version, List must show only objects, and any temp file
// left behind must be invisible and removable.

const crashEnv = "BUCKET_TEST_CRASH_DIR"

// selfChecking returns a payload of about size bytes whose first line
// states its length and CRC32C of the rest.
func selfChecking(i, size int) []byte {
	body := bytes.Repeat([]byte{byte(i)}, size+i%1000)
	return append(fmt.Appendf(nil, "%d %d\n", len(body), CRC32C(body)), body...)
}

func checkSelfChecking(data []byte) error {
	head, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return fmt.Errorf("no header in %d bytes", len(data))
	}
	var n int
	var crc uint32
	if _, err := fmt.Sscanf(string(head), "%d %d", &n, &crc); err != nil {
		return fmt.Errorf("header %q: %w", head, err)
	}
	if len(body) != n || CRC32C(body) != crc {
		return fmt.Errorf("torn object: header says %d bytes crc %d, body has %d bytes crc %d", n, crc, len(body), CRC32C(body))
	}
	return nil
}

func TestLocalCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper for TestLocalKilledMidPut")
	}
	l, err := NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		name := fmt.Sprintf("t/month=2024-0%d/part-000.parquet", i%3+1)
		if _, err := l.Put(context.Background(), name, selfChecking(i, 256<<10), Condition{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLocalKilledMidPut(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	l := newLocal(t)
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+l.Dir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it complete at least one Put, then kill it at an arbitrary
		// later instant.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if list, _ := l.List(ctx, ""); len(list) > round%3 || time.Now().After(deadline) {
				break
			}
		}
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		list, err := l.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			if !strings.HasSuffix(a.Name, ".parquet") {
				t.Errorf("round %d: List shows %q", round, a.Name)
			}
			data, g, err := l.Get(ctx, a.Name)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSelfChecking(data); err != nil {
				t.Errorf("round %d: %s: %v", round, a.Name, err)
			}
			if g.CRC32C != a.CRC32C && g.Generation == a.Generation {
				t.Errorf("round %d: %s: List crc32c %#x, Get %#x for generation %d", round, a.Name, a.CRC32C, g.CRC32C, g.Generation)
			}
		}
		if len(list) == 0 {
			t.Fatalf("round %d: helper wrote nothing before it was killed", round)
		}
		matches, _ := filepath.Glob(filepath.Join(l.Dir(), "t", "*", "*.parquet"))
		if len(matches) != len(list) {
			t.Errorf("round %d: glob *.parquet finds %d files, List %d objects", round, len(matches), len(list))
		}
	}
	tmp, err := l.TempFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("temp files left by 6 kills: %d", len(tmp))
	removed, err := l.CleanTemp(ctx, 0)
	if err != nil || len(removed) != len(tmp) {
		t.Errorf("CleanTemp removed %d of %d: %v", len(removed), len(tmp), err)
	}
}

// TestLocalFault drives the SetFault seam the way a full or read-only file
// system fails: each failing operation leaves the previous version, no temp
// file, and an error naming the object with the OS error and its class; with
// the fault removed the same write succeeds.
func TestLocalFault(t *testing.T) {
	const name = "a/b/part-000.parquet"
	tests := []struct {
		name       string
		op         string // the operation that fails
		errno      syscall.Errno
		delete     bool   // Delete instead of Put
		target     string // object written (default name)
		permission bool
	}{
		{"full mid-write", "write", syscall.ENOSPC, false, "", false},
		{"full creating a directory", "mkdir", syscall.ENOSPC, false, "a/new/part-000.parquet", false},
		{"read-only create", "open", syscall.EROFS, false, "", true},
		{"read-only rename", "rename", syscall.EROFS, false, "", true},
		{"read-only delete", "remove", syscall.EROFS, true, "", true},
		{"read-only lock file", "open", syscall.EROFS, true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := newLocal(t)
			before, err := l.Put(ctx, name, []byte("previous"), Condition{})
			if err != nil {
				t.Fatal(err)
			}
			target := name
			if tc.target != "" {
				target = tc.target
			}
			var mu sync.Mutex
			var calls []string
			l.SetFault(func(op, path string, n int) (int, syscall.Errno) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, op)
				if op != tc.op {
					return 0, 0
				}
				if op == "write" && n != len("replacement") {
					t.Errorf("write of %d bytes, want %d", n, len("replacement"))
				}
				return n / 2, tc.errno
			})
			if tc.delete {
				err = l.Delete(ctx, target, Condition{})
			} else {
				_, err = l.Put(ctx, target, []byte("replacement"), Condition{})
			}
			if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), tc.errno.Error()) {
				t.Fatalf("error = %v, want %v naming %q", err, tc.errno, target)
			}
			var pe *os.PathError
			if !errors.As(err, &pe) || !strings.HasPrefix(pe.Path, l.Dir()) {
				t.Errorf("error %v does not carry the file's *os.PathError", err)
			}
			if IsPermission(err) != tc.permission || IsTransient(err) || IsConflict(err) || IsNotFound(err) {
				t.Errorf("error %v: IsPermission = %v, want %v (and no other class)", err, IsPermission(err), tc.permission)
			}
			got, a, err := l.Get(ctx, name)
			if err != nil || string(got) != "previous" || a.Generation != before.Generation {
				t.Errorf("after failure Get = %q gen %d, %v; want the previous version", got, a.Generation, err)
			}
			if tc.target != "" {
				if _, err := l.Attrs(ctx, tc.target); !IsNotFound(err) {
					t.Errorf("failed Put left %s: %v", tc.target, err)
				}
			}
			if tmp, _ := l.TempFiles(ctx); len(tmp) != 0 {
				t.Errorf("temp files left: %q", tmp)
			}
			mu.Lock()
			if !slices.Contains(calls, tc.op) {
				t.Errorf("operations %q: %s never reached the seam", calls, tc.op)
			}
			mu.Unlock()
			l.SetFault(nil)
			if tc.delete {
				err = l.Delete(ctx, target, Condition{})
			} else {
				_, err = l.Put(ctx, target, []byte("replacement"), Condition{})
			}
			if err != nil {
				t.Errorf("with the fault removed: %v", err)
			}
		})
	}
}

// TestLocalCleanTempSparesWritesInFlight: CleanTemp(0) of one writer (another
// process on the same directory, here a second Local) must never remove the temp
// file of a Put in flight; that Put succeeds, and a later CleanTemp removes what a
// dead writer left.
func TestLocalCleanTempSparesWritesInFlight(t *testing.T) {
	ctx := context.Background()
	writer := newLocal(t)
	cleaner, err := NewLocal(writer.Dir())
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(writer.Dir(), ".dead.json.tmp-1")
	if err := os.WriteFile(leftover, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	var removedMid []string
	writer.writeData = func(f *os.File, data []byte) error {
		removedMid, _ = cleaner.CleanTemp(ctx, 0)
		return writeAll(f, data)
	}
	if _, err := writer.Put(ctx, "_locks/shard-000-of-001.json", []byte(`{"run_id":"r"}`), Condition{DoesNotExist: true}); err != nil {
		t.Fatalf("Put while another writer cleaned temp files: %v", err)
	}
	if len(removedMid) != 0 {
		t.Errorf("CleanTemp during a Put in flight removed %q", removedMid)
	}
	writer.writeData = writeAll
	removed, err := cleaner.CleanTemp(ctx, 0)
	if err != nil || fmt.Sprint(removed) != "[.dead.json.tmp-1]" {
		t.Errorf("CleanTemp with no write in flight = %q, %v; want the dead writer's file", removed, err)
	}
	if list, _ := writer.List(ctx, ""); len(list) != 1 {
		t.Errorf("List shows %+v; want only the lock object", list)
	}
}
