package main

// Helpers for the tests that run the built extract binary as a user would: the
// binary is built once per test process, talks to an in-process fake Akahu over
// loopback, and its output directory is read back with Arrow's pqarrow reader, an
// implementation independent of the parquet-go writer the pipeline uses.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

var nzTime = mustLoadZone("Pacific/Auckland")

func mustLoadZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// nzDate is local midnight of a calendar date in the dataset time zone.
func nzDate(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, nzTime) }

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// extractBinary builds ./cmd/extract once per test process and returns its path.
// Build directories of earlier test processes older than a day are removed, since
// without a TestMain there is no hook at the end of the process.
func extractBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the extract binary; skipped with -short")
	}
	binOnce.Do(func() {
		tmp := os.TempDir()
		if old, _ := filepath.Glob(filepath.Join(tmp, "akahu-extract-bin-*")); len(old) > 0 {
			for _, d := range old {
				if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
					_ = os.RemoveAll(d)
				}
			}
		}
		dir, err := os.MkdirTemp(tmp, "akahu-extract-bin-")
		if err != nil {
			binErr = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			binErr = fmt.Errorf("go tool not found: %w", err)
			return
		}
		binPath = filepath.Join(dir, "extract")
		cmd := exec.Command(goTool, "build", "-tags", "crashtest", "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// fakeAkahu is a fake Akahu on loopback plus a tokens file for its users.
type fakeAkahu struct {
	srv    *akahutest.Server
	tokens string // path of a --user-tokens-file with every user's token
}

// smallOptions is the population of the binary tests: 2 users × 3 accounts, four
// months of about 20 transactions per account and month, small pages.
func smallOptions(seed int64) akahutest.Options {
	return akahutest.Options{Seed: seed, Users: 2, AccountsPerUser: 3, TxPerAccountPerMonth: 20,
		From: nzDate(2026, 6, 1), To: nzDate(2026, 9, 30), PageSize: 25}
}

func newFakeAkahu(t testing.TB, opts akahutest.Options) *fakeAkahu {
	t.Helper()
	srv := akahutest.NewServer(opts)
	t.Cleanup(srv.Close)
	f := &fakeAkahu{srv: srv, tokens: filepath.Join(t.TempDir(), "tokens.txt")}
	var b strings.Builder
	b.WriteString("# user tokens for the extract binary tests\n")
	for _, u := range srv.Users() {
		b.WriteString(u.Token + "\n")
	}
	if err := os.WriteFile(f.tokens, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// rangeArgs are --start and --end for the fake's whole history.
func (f *fakeAkahu) rangeArgs() []string {
	o := f.srv.Options()
	return []string{"--start", o.From.Format(time.DateOnly), "--end", o.To.Format(time.DateOnly)}
}

// binResult is how one process of the binary ended.
type binResult struct {
	code           int            // exit status, -1 when killed by a signal
	signal         syscall.Signal // the signal that killed it, or 0
	stdout, stderr string
	elapsed        time.Duration
}

func (r binResult) String() string {
	how := fmt.Sprintf("exit %d", r.code)
	if r.signal != 0 {
		how = "killed by " + r.signal.String()
	}
	return fmt.Sprintf("%s after %s\nstdout:\n%s\nstderr:\n%s", how, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// binProc is a started process of the binary.
type binProc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	begin          time.Time
	cancel         context.CancelFunc
}

// childEnv is the process environment for the binary: the test's own, without any
// variable the binary reads, plus the fake's base URL and app token and extra.
func (f *fakeAkahu) childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AKAHU_"), strings.HasPrefix(name, "EXTRACT_"),
			strings.HasPrefix(name, "CLOUD_RUN_TASK_"), name == "JOB_COMPLETION_INDEX", name == "STORAGE_EMULATOR_HOST":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AKAHU_BASE_URL="+f.srv.URL, "AKAHU_APP_TOKEN="+f.srv.AppToken())
	return append(env, extra...)
}

// start starts the binary with args (the full command line after the program name).
func (f *fakeAkahu) start(t testing.TB, env []string, args ...string) *binProc {
	t.Helper()
	bin := extractBinary(t) // built (once) before the run's own deadline starts
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p := &binProc{cmd: exec.CommandContext(ctx, bin, args...), cancel: cancel}
	p.cmd.Env = f.childEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.begin = time.Now()
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start extract: %v", err)
	}
	return p
}

// wait waits for the process and reports how it ended.
func (p *binProc) wait(t testing.TB) binResult {
	t.Helper()
	defer p.cancel()
	err := p.cmd.Wait()
	r := binResult{stdout: p.stdout.String(), stderr: p.stderr.String(), elapsed: time.Since(p.begin)}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("extract: %v", err)
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		t.Fatalf("extract: no wait status: %v", p.cmd.ProcessState)
	}
	r.code = ws.ExitStatus()
	if ws.Signaled() {
		r.signal = ws.Signal()
	}
	return r
}

// exec runs the binary to completion.
func (f *fakeAkahu) exec(t testing.TB, env []string, args ...string) binResult {
	t.Helper()
	return f.start(t, env, args...).wait(t)
}

// runArgs is 'extract run' on out with the tokens file and quiet logs.
func (f *fakeAkahu) runArgs(out string, args ...string) []string {
	return append([]string{"run", "--out", out, "--user-tokens-file", f.tokens, "--log-level", "warn", "--workers", "4"}, args...)
}

// runOK runs 'extract run' and requires exit status 0.
func (f *fakeAkahu) runOK(t testing.TB, out string, args ...string) binResult {
	t.Helper()
	r := f.exec(t, nil, f.runArgs(out, args...)...)
	if r.code != 0 || r.signal != 0 {
		t.Fatalf("extract run --out %s %s: %s", out, strings.Join(args, " "), r)
	}
	return r
}

// truth is Akahu's settled transactions of every user's accounts dated in
// [from, to], keyed by id, as the fake has them now.
func (f *fakeAkahu) truth(from, to time.Time, skipUsers ...string) map[string]txKey {
	w := akahu.LocalDates(from, to, nzTime)
	out := map[string]txKey{}
users:
	for _, u := range f.srv.Users() {
		for _, s := range skipUsers {
			if s == u.ID {
				continue users
			}
		}
		for _, acct := range f.srv.AccountIDs(u.ID) {
			for _, tx := range f.srv.Settled(acct, w.Start, w.End) {
				out[tx.ID] = txKey{ID: tx.ID, Account: tx.AccountID, DateLocal: tx.Date.In(nzTime).Format(time.DateOnly),
					Amount: exactDecimal(tx.Amount), Description: tx.Description}
			}
		}
	}
	return out
}

// pendingCount is the number of pending transactions the fake serves.
func (f *fakeAkahu) pendingCount() int {
	n := 0
	for _, u := range f.srv.Users() {
		for _, acct := range f.srv.AccountIDs(u.ID) {
			n += len(f.srv.Pending(acct))
		}
	}
	return n
}

// txKey is what the crash tests compare of a transactions row.
type txKey struct {
	ID, Account, DateLocal, Amount, Description string
}

// dsRow is a row of transactions/ or deletions/ with the object it is in.
type dsRow struct {
	txKey
	Object    string
	Reason    string // deletions only
	DeletedBy string // deletions only: the run that recorded the tombstone
}

// manifestDoc is the part of a run manifest the tests read.
type manifestDoc struct {
	RunID   string `json:"run_id"`
	Deleted []struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	} `json:"deleted"`
	Recovered []string `json:"recovered"`
	Failures  []string `json:"failures"`
	Users     []struct {
		UserID string `json:"user_id"`
		Index  int    `json:"index"`
		Status string `json:"status"`
	} `json:"users"`
	UserCounts map[string]int `json:"user_counts"`
	Counts     struct {
		Inserted, Updated, Unchanged, Moved, Deleted, Pending int64
	} `json:"counts"`
	Uploads struct {
		Objects int64 `json:"objects"`
	} `json:"uploads"`
	Reads struct {
		Objects int64 `json:"objects"`
		Ranges  int64 `json:"ranges"`
		Bytes   int64 `json:"bytes"`
	} `json:"reads"`
	Objects []struct {
		Path string `json:"path"`
		Op   string `json:"op"`
	} `json:"objects"`
}

// dataset is an output directory as an analyst's glob and a reader see it.
type dataset struct {
	dir         string
	files       []string // every regular file, slash-separated, relative
	tx          []dsRow
	deletions   []dsRow
	pendingRows int64
	accountRows int64
	manifests   []manifestDoc
	inflight    []string
	locks       []string
	temps       []string
}

// readDataset reads every file of dir. Every .parquet must open and read with
// pqarrow and every .json must parse; any that does not is returned as an error
// (the crash tests call it at the instant of the kill).
func readDataset(dir string) (*dataset, error) {
	ds := &dataset{dir: dir}
	var problems []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		ds.files = append(ds.files, rel)
		base := d.Name()
		if strings.HasPrefix(base, ".") && strings.Contains(base, ".tmp") {
			ds.temps = append(ds.temps, rel)
		}
		switch {
		case strings.HasPrefix(rel, "_inflight/"):
			ds.inflight = append(ds.inflight, rel)
		case strings.HasPrefix(rel, "_locks/"):
			ds.locks = append(ds.locks, rel)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(base, ".json"):
			if !json.Valid(data) {
				problems = append(problems, fmt.Sprintf("%s: not valid JSON (%d bytes)", rel, len(data)))
				return nil
			}
			if strings.HasPrefix(rel, "_manifests/") {
				var m manifestDoc
				if err := json.Unmarshal(data, &m); err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", rel, err))
				}
				ds.manifests = append(ds.manifests, m)
			}
		case strings.HasSuffix(base, ".parquet"):
			tbl, err := readParquet(data)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: pqarrow cannot read it (%d bytes): %v", rel, len(data), err))
				return nil
			}
			defer tbl.Release()
			switch {
			case strings.HasPrefix(rel, "transactions/"):
				rows, err := txRows(tbl, rel, false)
				if err != nil {
					problems = append(problems, err.Error())
				}
				ds.tx = append(ds.tx, rows...)
			case strings.HasPrefix(rel, "deletions/"):
				rows, err := txRows(tbl, rel, true)
				if err != nil {
					problems = append(problems, err.Error())
				}
				ds.deletions = append(ds.deletions, rows...)
			case strings.HasPrefix(rel, "pending/"):
				ds.pendingRows += tbl.NumRows()
			case strings.HasPrefix(rel, "accounts/"):
				ds.accountRows += tbl.NumRows()
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) && len(ds.files) == 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return ds, errors.New(strings.Join(problems, "\n"))
	}
	return ds, nil
}

// mustReadDataset reads dir and fails the test on any unreadable file.
func mustReadDataset(t testing.TB, dir string) *dataset {
	t.Helper()
	ds, err := readDataset(dir)
	if err != nil {
		t.Fatalf("read dataset %s: %v", dir, err)
	}
	return ds
}

func readParquet(data []byte) (arrow.Table, error) {
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	return fr.ReadTable(context.Background())
}

// txRows extracts the compared columns of a transactions or deletions table.
func txRows(tbl arrow.Table, name string, deletions bool) ([]dsRow, error) {
	cols := []string{"id", "account_id", "date_local", "amount", "description"}
	if deletions {
		cols = append(cols, "deleted_reason", "deleted_by_run")
	}
	chunks := map[string][]arrow.Array{}
	for _, c := range cols {
		idx := tbl.Schema().FieldIndices(c)
		if len(idx) != 1 {
			return nil, fmt.Errorf("%s: no column %q", name, c)
		}
		chunks[c] = tbl.Column(idx[0]).Data().Chunks()
	}
	str := func(a arrow.Array, i int) string {
		if a.IsNull(i) {
			return ""
		}
		if s, ok := a.(*array.String); ok {
			return s.Value(i)
		}
		return a.ValueStr(i)
	}
	var out []dsRow
	for c, ids := range chunks["id"] {
		for i := 0; i < ids.Len(); i++ {
			amt, ok := chunks["amount"][c].(*array.Decimal128)
			if !ok {
				return nil, fmt.Errorf("%s: amount is %s, want decimal", name, chunks["amount"][c].DataType())
			}
			dl, ok := chunks["date_local"][c].(*array.Date32)
			if !ok {
				return nil, fmt.Errorf("%s: date_local is %s, want date32", name, chunks["date_local"][c].DataType())
			}
			r := dsRow{Object: name, txKey: txKey{
				ID: str(ids, i), Account: str(chunks["account_id"][c], i),
				DateLocal:   dl.Value(i).ToTime().Format(time.DateOnly),
				Amount:      exactDecimal(amt.Value(i).ToString(amt.DataType().(*arrow.Decimal128Type).Scale)),
				Description: str(chunks["description"][c], i),
			}}
			if deletions {
				r.Reason = str(chunks["deleted_reason"][c], i)
				r.DeletedBy = str(chunks["deleted_by_run"][c], i)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// exactDecimal canonicalises decimal text ("12.50", "12.5000") exactly.
func exactDecimal(s string) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "invalid:" + s
	}
	return r.RatString()
}

// txByID indexes transactions rows by id and reports every duplicate id.
func (ds *dataset) txByID() (map[string]txKey, []string) {
	out := make(map[string]txKey, len(ds.tx))
	where := map[string]string{}
	var dups []string
	for _, r := range ds.tx {
		if prev, dup := where[r.ID]; dup {
			dups = append(dups, fmt.Sprintf("%s in %s and %s", r.ID, prev, r.Object))
			continue
		}
		where[r.ID] = r.Object
		out[r.ID] = r.txKey
	}
	return out, dups
}

// tombstoneCounts counts the tombstone rows of each id in deletions/.
func (ds *dataset) tombstoneCounts() map[string]int {
	out := map[string]int{}
	for _, r := range ds.deletions {
		out[r.ID]++
	}
	return out
}

// manifestDeletions counts each id across the deleted lists of every committed manifest.
func (ds *dataset) manifestDeletions() map[string]int {
	out := map[string]int{}
	for _, m := range ds.manifests {
		for _, d := range m.Deleted {
			out[d.ID]++
		}
	}
	return out
}

// hasFile reports whether a file matching the glob pattern exists in the dataset.
func (ds *dataset) hasFile(pattern string) bool {
	for _, f := range ds.files {
		if ok, _ := filepath.Match(pattern, f); ok {
			return true
		}
	}
	return false
}

// diffRows describes how got differs from want (at most a few lines per kind).
func diffRows(want, got map[string]txKey) []string {
	var out []string
	for _, id := range sortedIDs(want) {
		g, ok := got[id]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("missing %+v", want[id]))
		case g != want[id]:
			out = append(out, fmt.Sprintf("differs: have %+v, want %+v", g, want[id]))
		}
	}
	for _, id := range sortedIDs(got) {
		if _, ok := want[id]; !ok {
			out = append(out, fmt.Sprintf("unexpected %+v", got[id]))
		}
	}
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("… and %d more", len(out)-8))
	}
	return out
}

func sortedIDs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// copyDir copies the regular files of src into dst (created), keeping mtimes
// (the local bucket's generations). A missing src copies as an empty directory.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}
