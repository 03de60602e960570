package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the shard lock: acquiring the lock object, the lease and its
// heartbeat, liveness of a holder, and the lease-checking bucket every write goes through.

// DefaultLockTTL is how long a lock stays valid without a heartbeat. A run refreshes it
// every third of that, retrying failed refreshes; it stops writing a quarter of the TTL
// before the lease would end if no refresh got through (see lease).
const DefaultLockTTL = 2 * time.Minute

type lockDoc struct {
	RunID string `json:"run_id"`
	Host  string `json:"host"`
	PID   int    `json:"pid"`
	// BootID, PIDNS and ProcStart say which process PID is (Linux only): the kernel's
	// boot id, the PID namespace (the link /proc/self/ns/pid) and the process's start
	// time in clock ticks since boot. Two containers may share a host name and even a
	// PID; only a holder in this kernel and this PID namespace can be seen to be dead.
	BootID    string    `json:"boot_id,omitempty"`
	PIDNS     string    `json:"pid_ns,omitempty"`
	ProcStart uint64    `json:"proc_start,omitempty"`
	Acquired  time.Time `json:"acquired_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// lease is a held lock object, refreshed in the background until released.
//
// A refresh that fails for any reason other than a lost precondition is retried until
// the lease's safe end, ExpiresAt minus margin; if none got through by then the lease is
// lost: lostCtx is cancelled (bind cancels the run's work, and writes in flight through
// a leasedBucket are cancelled) and check fails from then on, so every further write
// is refused. check also fails by the clock alone once the safe end passed.
type lease struct {
	b      bucket.Bucket
	name   string
	ttl    time.Duration
	margin time.Duration
	now    func() time.Time

	mu      sync.Mutex
	doc     lockDoc // as last written
	gen     int64
	lost    error
	lostCtx context.Context // cancelled, with lost as its cause, when the lease is lost
	setLost context.CancelCauseFunc
	stop    chan struct{}
	done    chan struct{}
}

// acquireLock takes the shard's lock object, waiting up to wait for a live holder.
// A holder whose lease expired, or that provably died (see holderDead), is taken over
// with a generation condition, so two contenders never both win.
func acquireLock(ctx context.Context, b bucket.Bucket, name, runID string, ttl, wait time.Duration, now func() time.Time) (*lease, error) {
	host, _ := os.Hostname()
	self := selfIdentity()
	deadline := now().Add(wait)
	delay := 200 * time.Millisecond
	for {
		doc := lockDoc{RunID: runID, Host: host, PID: os.Getpid(), BootID: self.BootID, PIDNS: self.PIDNS, ProcStart: self.ProcStart,
			Acquired: now().UTC(), ExpiresAt: now().Add(ttl).UTC()}
		data, _ := json.Marshal(doc)
		attrs, err := b.Put(ctx, name, data, bucket.Condition{DoesNotExist: true})
		if err == nil {
			return startLease(b, name, doc, attrs.Generation, ttl, now), nil
		}
		if !errors.Is(err, bucket.ErrConflict) {
			return nil, fmt.Errorf("take lock %s: %w", name, err)
		}
		cur, curAttrs, gerr := b.Get(ctx, name)
		if errors.Is(gerr, bucket.ErrNotFound) {
			continue // released meanwhile
		}
		if gerr != nil {
			return nil, fmt.Errorf("read lock %s: %w", name, gerr)
		}
		var held lockDoc
		stale := json.Unmarshal(cur, &held) != nil || now().After(held.ExpiresAt) || holderDead(held, doc)
		if stale {
			attrs, err := b.Put(ctx, name, data, bucket.Condition{GenerationMatch: curAttrs.Generation})
			if err == nil {
				return startLease(b, name, doc, attrs.Generation, ttl, now), nil
			}
			if !errors.Is(err, bucket.ErrConflict) {
				return nil, fmt.Errorf("take over stale lock %s: %w", name, err)
			}
			continue
		}
		if !now().Before(deadline) {
			return nil, fmt.Errorf("%w: %s held by run %s (host %s, pid %d) until %s",
				ErrLocked, name, held.RunID, held.Host, held.PID, held.ExpiresAt.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// holderDead reports whether the holder of an unexpired lock is provably gone: it ran
// on this host, in this kernel (boot id) and this PID namespace, and its PID names no
// process or one that started at another time (the PID was reused). Anything else, a
// lock written without these fields included, waits for the lease to expire: a
// container sharing this host name but not its PID namespace may hold it alive.
func holderDead(held, self lockDoc) bool {
	if held.Host != self.Host || held.PID <= 0 ||
		held.BootID == "" || held.BootID != self.BootID ||
		held.PIDNS == "" || held.PIDNS != self.PIDNS || held.ProcStart == 0 {
		return false
	}
	if !processAlive(held.PID) {
		return true
	}
	start, err := procStartTime(held.PID)
	return err == nil && start != held.ProcStart
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// selfIdentity returns this process's boot id, PID namespace and start time; fields it
// cannot read (not Linux, /proc not mounted) stay empty, which rules out an early
// takeover of its locks.
func selfIdentity() lockDoc {
	var d lockDoc
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		d.BootID = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		d.PIDNS = ns
	}
	if st, err := procStartTime(os.Getpid()); err == nil {
		d.ProcStart = st
	}
	if d.BootID == "" || d.PIDNS == "" || d.ProcStart == 0 {
		return lockDoc{}
	}
	return d
}

// procStartTime returns field 22 of /proc/PID/stat: when the process started, in clock
// ticks since boot.
func procStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain anything.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64) // f[0] is field 3
}

func startLease(b bucket.Bucket, name string, doc lockDoc, gen int64, ttl time.Duration, now func() time.Time) *lease {
	l := &lease{b: b, name: name, doc: doc, gen: gen, ttl: ttl, margin: ttl / 4, now: now,
		stop: make(chan struct{}), done: make(chan struct{})}
	l.lostCtx, l.setLost = context.WithCancelCause(context.Background())
	go l.heartbeat()
	return l
}

// heartbeat refreshes the lease a third of the TTL after each refresh.
func (l *lease) heartbeat() {
	defer close(l.done)
	for {
		l.mu.Lock()
		next := l.doc.ExpiresAt.Add(-l.ttl + l.ttl/3)
		l.mu.Unlock()
		if !l.sleep(next.Sub(l.now())) {
			return
		}
		if err := l.refresh(); err != nil {
			l.lose(err)
			return
		}
	}
}

// sleep waits d, or returns false when the lease is being released.
func (l *lease) sleep(d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-l.stop:
		return false
	case <-t.C:
		return true
	}
}

// refresh extends the lease, retrying any error but a lost precondition until the
// lease's safe end.
func (l *lease) refresh() error {
	backoff := max(l.ttl/60, 10*time.Millisecond)
	var last error
	for attempt := 0; ; attempt++ {
		l.mu.Lock()
		cur, gen, lost := l.doc, l.gen, l.lost
		l.mu.Unlock()
		if lost != nil {
			return lost
		}
		safeEnd := cur.ExpiresAt.Add(-l.margin)
		remaining := safeEnd.Sub(l.now())
		if remaining <= 0 {
			return fmt.Errorf("%w: %s could not be refreshed before %s (the lease ends at %s); %d attempts, last error: %w",
				ErrLockLost, l.name, safeEnd.Format(time.RFC3339Nano), cur.ExpiresAt.Format(time.RFC3339Nano), attempt, last)
		}
		next := cur
		next.ExpiresAt = l.now().Add(l.ttl).UTC()
		data, _ := json.Marshal(next)
		ctx, cancel := context.WithTimeout(context.Background(), min(remaining, l.ttl/3))
		attrs, err := l.b.Put(ctx, l.name, data, bucket.Condition{GenerationMatch: gen})
		if errors.Is(err, bucket.ErrConflict) {
			// An earlier attempt that timed out may have been stored after all.
			if held, a, ok := l.readOwn(ctx, cur); ok {
				next, attrs, err = held, a, nil
			}
		}
		cancel()
		switch {
		case err == nil:
			l.mu.Lock()
			l.doc, l.gen = next, attrs.Generation
			l.mu.Unlock()
			return nil
		case errors.Is(err, bucket.ErrConflict):
			return fmt.Errorf("%w: %s was taken over by another run: %w", ErrLockLost, l.name, err)
		}
		last = err
		if !l.sleep(min(backoff, remaining)) {
			return nil
		}
		backoff = min(2*backoff, l.ttl/12)
	}
}

// readOwn returns the stored lock document if this lease wrote it.
func (l *lease) readOwn(ctx context.Context, mine lockDoc) (lockDoc, bucket.Attrs, bool) {
	data, attrs, err := l.b.Get(ctx, l.name)
	if err != nil {
		return lockDoc{}, bucket.Attrs{}, false
	}
	var held lockDoc
	if json.Unmarshal(data, &held) != nil || held.RunID != mine.RunID || held.Host != mine.Host ||
		held.PID != mine.PID || !held.Acquired.Equal(mine.Acquired) {
		return lockDoc{}, bucket.Attrs{}, false
	}
	return held, attrs, true
}

func (l *lease) lose(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loseLocked(err)
}

func (l *lease) loseLocked(err error) {
	if l.lost == nil {
		l.lost = err
		l.setLost(err)
	}
}

// check returns an error once the lease was lost to another run or reached its safe
// end without a refresh.
func (l *lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil && l.now != nil { // a zero lease (in tests) never expires
		if safeEnd := l.doc.ExpiresAt.Add(-l.margin); !l.now().Before(safeEnd) {
			l.loseLocked(fmt.Errorf("%w: %s was not refreshed before %s (the lease ends at %s)",
				ErrLockLost, l.name, safeEnd.Format(time.RFC3339Nano), l.doc.ExpiresAt.Format(time.RFC3339Nano)))
		}
	}
	return l.lost
}

// bind returns a context that is cancelled, with the lease's error as its cause, when
// the lease is lost.
func (l *lease) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.lostCtx, func() { cancel(context.Cause(l.lostCtx)) })
	return ctx, func() { stop(); cancel(nil) }
}

// release stops the heartbeat and deletes the lock if it is still ours.
func (l *lease) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	if err := l.check(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.b.Delete(ctx, l.name, bucket.Condition{GenerationMatch: l.gen}); err != nil && !errors.Is(err, bucket.ErrNotFound) {
		return fmt.Errorf("release lock %s: %w", l.name, err)
	}
	return nil
}

// leasedBucket is the bucket a run or purge writes through while it holds leases:
// every Put and Delete first checks each lease and runs under a context cancelled when
// one is lost, so no write of a run that lost its lock (or could no longer refresh it
// before its safe end) reaches the store after another run could have taken over.
type leasedBucket struct {
	bucket.Bucket
	leases []*lease
}

func (g *leasedBucket) guard(ctx context.Context, name string) (context.Context, context.CancelFunc, error) {
	if err := g.lostError(); err != nil {
		return nil, nil, fmt.Errorf("write %s refused: %w", name, err)
	}
	ctx, cancel := g.bind(ctx)
	return ctx, cancel, nil
}

func (g *leasedBucket) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	ctx, cancel, err := g.guard(ctx, name)
	if err != nil {
		return bucket.Attrs{}, err
	}
	defer cancel()
	return g.Bucket.Put(ctx, name, data, cond)
}

func (g *leasedBucket) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	ctx, cancel, err := g.guard(ctx, name)
	if err != nil {
		return err
	}
	defer cancel()
	return g.Bucket.Delete(ctx, name, cond)
}

var _ bucket.TempCleaner = (*leasedBucket)(nil)

// CleanTemp implements bucket.TempCleaner: it removes crashed writers' temp files
// when the store keeps any (a local directory), under the same guard as a write.
func (g *leasedBucket) CleanTemp(ctx context.Context, age time.Duration) ([]string, error) {
	tc, ok := g.Bucket.(bucket.TempCleaner)
	if !ok {
		return nil, nil
	}
	ctx, cancel, err := g.guard(ctx, "temp files")
	if err != nil {
		return nil, err
	}
	defer cancel()
	return tc.CleanTemp(ctx, age)
}

// lostError returns the error of the first lost lease, if any.
func (g *leasedBucket) lostError() error {
	for _, l := range g.leases {
		if err := l.check(); err != nil {
			return err
		}
	}
	return nil
}

// leaseError is a failed run's error once its lease is lost: the loss is the cause
// (cancelled work and refused writes are its consequences). A run that committed
// keeps its result.
func leaseError(g *leasedBucket, err error) error {
	if err == nil || errors.Is(err, ErrPartial) {
		return err
	}
	lerr := g.lostError()
	switch {
	case lerr == nil:
		return err
	case errors.Is(err, ErrLockLost), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return lerr
	}
	return fmt.Errorf("%w (the run also failed: %v)", lerr, err)
}

// bind returns a context cancelled when any of the leases is lost.
func (g *leasedBucket) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	var stops []context.CancelFunc
	for _, l := range g.leases {
		var stop context.CancelFunc
		ctx, stop = l.bind(ctx)
		stops = append(stops, stop)
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
	}
}
