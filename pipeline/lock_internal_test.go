package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// TestRunShardWide: the shard of a run id is read whole, however many digits it has
// (shard 1000 was read as 100).
func TestRunShardWide(t *testing.T) {
	at := time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)
	for _, shard := range []int{0, 7, 999, 1000, 4095, 12345} {
		id := newRunID(at, shard, "a1b2c3")
		if got := runShard(id); got != shard {
			t.Errorf("runShard(%q) = %d, want %d", id, got, shard)
		}
	}
	for _, bad := range []string{"", "20261130T200000.000Z", "x-s1-abc", "x-sabc-def"} {
		if got := runShard(bad); got != -1 {
			t.Errorf("runShard(%q) = %d, want -1", bad, got)
		}
	}
}

// testIdentity reads this process's boot id, PID namespace and start time the way a
// lock holder records them, independently of the code under test.
func testIdentity(t *testing.T) (boot, ns string, start uint64) {
	t.Helper()
	b, err1 := os.ReadFile("/proc/sys/kernel/random/boot_id")
	n, err2 := os.Readlink("/proc/self/ns/pid")
	st, err3 := os.ReadFile("/proc/self/stat")
	if err1 != nil || err2 != nil || err3 != nil {
		t.Skipf("no /proc here: %v %v %v", err1, err2, err3)
	}
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)), n, start
}

// TestLockLiveness plants an unexpired lock document naming this host and checks
// when a contender takes it over before it expires: only when the holder is provably
// dead in this kernel and PID namespace (its PID gone, or reused by a process that
// started at another time). A holder in another PID namespace (a container sharing
// the host name), of another boot, or recorded by an older tool without these fields
// is waited for.
func TestLockLiveness(t *testing.T) {
	boot, ns, start := testIdentity(t)
	host, _ := os.Hostname()
	child := exec.Command("true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := child.Process.Pid // exited and reaped
	self := os.Getpid()
	cases := []struct {
		name     string
		doc      map[string]any
		takeover bool
	}{
		{"dead pid, same kernel and namespace", map[string]any{"host": host, "pid": dead, "boot_id": boot, "pid_ns": ns, "proc_start": start}, true},
		{"pid reused by a younger process", map[string]any{"host": host, "pid": self, "boot_id": boot, "pid_ns": ns, "proc_start": start - 1}, true},
		{"live holder", map[string]any{"host": host, "pid": self, "boot_id": boot, "pid_ns": ns, "proc_start": start}, false},
		{"dead pid in another pid namespace", map[string]any{"host": host, "pid": dead, "boot_id": boot, "pid_ns": "pid:[4026599999]", "proc_start": start}, false},
		{"dead pid, another boot", map[string]any{"host": host, "pid": dead, "boot_id": "00000000-0000-0000-0000-000000000000", "pid_ns": ns, "proc_start": start}, false},
		{"dead pid, older tool's document", map[string]any{"host": host, "pid": dead}, false},
		{"dead pid, other host", map[string]any{"host": host + "-other", "pid": dead, "boot_id": boot, "pid_ns": ns, "proc_start": start}, false},
	}
	now := time.Now
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			b := bucket.NewMemory()
			name := lockObject(0, 1)
			c.doc["run_id"] = "20261130T200000.000Z-s000-holder"
			c.doc["acquired_at"] = now().UTC()
			c.doc["expires_at"] = now().Add(time.Hour).UTC()
			data, _ := json.Marshal(c.doc)
			if _, err := b.Put(ctx, name, data, bucket.Condition{DoesNotExist: true}); err != nil {
				t.Fatal(err)
			}
			l, err := acquireLock(ctx, b, name, "20261130T200001.000Z-s000-taker", time.Minute, 0, now)
			if c.takeover {
				if err != nil {
					t.Fatalf("the holder is dead but the lock was not taken over: %v", err)
				}
				_ = l.release(ctx)
				return
			}
			if err == nil {
				_ = l.release(ctx)
				t.Fatal("the lock was taken over although its holder may be alive")
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("err %v, want ErrLocked", err)
			}
		})
	}
}
