package main

import (
	"flag"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
	"github.com/akahu-etl/akahu-parquet/sources/akahu/akahutest"
)

var crashFull = flag.Bool("crash.full", false, "crash matrix: larger population and a second crash during every recovery run")

// maxKillPoints bounds the search for a run's write points.
const maxKillPoints = 200

// crashScenario is one starting point of the crash matrix: an optional baseline run,
// changes at Akahu after it, and the run that is killed at each of its write points.
type crashScenario struct {
	name     string
	opts     akahutest.Options
	baseline []string                              // args of the baseline run; nil starts from an empty directory
	mutate   func(*testing.T, *fakeAkahu) []string // changes after the baseline; returns the ids that must be tombstoned
	run      []string                              // args of the run under test
	// preCrash, if set, starts from a directory where a first attempt of the run was
	// killed: "after-tombstones" just after its first tombstone object, "before-manifest"
	// just before its manifest. The matrix then kills the recovery run.
	preCrash string
	double   bool // also crash every recovery run once before the final re-run
}

// TestBinaryCrashMatrix is invariant 5 for the built binary: for every write point N
// of a run (EXTRACT_TEST_KILL_AT=N) the process dies by SIGKILL, every .parquet and
// .json visible in the directory reads whole, and a re-run without the hook exits 0
// and leaves the same rows, tombstones and manifests' deletions as a run that was
// never killed, with no in-flight marker, lock or temp file left.
func TestBinaryCrashMatrix(t *testing.T) {
	opts := smallOptions(21)
	if *crashFull {
		opts = akahutest.Options{Seed: 21, Users: 3, AccountsPerUser: 4, TxPerAccountPerMonth: 40,
			From: nzDate(2026, 4, 1), To: nzDate(2026, 9, 30), PageSize: 25}
	}
	whole := []string{"--start", opts.From.Format(time.DateOnly), "--end", opts.To.Format(time.DateOnly)}
	last2 := []string{"--start", "2026-08-01", "--end", "2026-09-30"}
	scenarios := []crashScenario{
		{name: "backfill", opts: opts, run: whole},
		{name: "incremental last two months", opts: opts, baseline: whole, mutate: scriptBankChanges, run: last2, double: *crashFull},
		{name: "incremental whole range 2 buckets", opts: opts, baseline: append([]string{"--buckets", "2"}, whole...),
			mutate: scriptBankChanges, run: whole, double: *crashFull},
		{name: "scheduled lookback run", opts: opts, baseline: whole, mutate: scriptBankChanges, run: []string{"--lookback", "45d"}},
		{name: "recovery of a run killed before its manifest", opts: opts, baseline: whole, mutate: scriptBankChanges, run: last2,
			preCrash: "before-manifest"},
	}
	if *crashFull {
		scenarios = append(scenarios, crashScenario{name: "recovery of a run killed after its first tombstone", opts: opts,
			baseline: whole, mutate: scriptBankChanges, run: last2, preCrash: "after-tombstones"})
	}
	total, runs := 0, 0
	begin := time.Now()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			n, r := runCrashScenario(t, sc)
			total += n
			runs += r
		})
	}
	t.Logf("crash matrix: %d kill points, %d binary runs in %s", total, runs, time.Since(begin).Round(time.Millisecond))
}

// runCrashScenario runs one scenario and returns the kill points tried and the
// binary runs made.
func runCrashScenario(t *testing.T, sc crashScenario) (points, runs int) {
	f := newFakeAkahu(t, sc.opts)
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	if sc.baseline != nil {
		f.runOK(t, base, sc.baseline...)
		runs++
	}
	var deleted []string
	if sc.mutate != nil {
		deleted = sc.mutate(t, f)
	}
	if sc.preCrash != "" {
		var n int
		base, n = crashedState(t, f, base, tmp, sc.run, sc.preCrash)
		runs += n
	}

	// The reference: the same run from the same start, never killed.
	ref := filepath.Join(tmp, "ref")
	copyDir(t, base, ref)
	f.runOK(t, ref, sc.run...)
	runs++
	want := mustReadDataset(t, ref)
	o := f.srv.Options()
	wantRows, dups := want.txByID()
	if len(dups) > 0 {
		t.Fatalf("reference run: duplicate ids %v", dups)
	}
	if d := diffRows(f.truth(o.From, o.To), wantRows); len(d) > 0 {
		t.Fatalf("reference run: transactions/ differ from Akahu:\n%s", strings.Join(d, "\n"))
	}
	tombs, mdel := want.tombstoneCounts(), want.manifestDeletions()
	for _, id := range deleted {
		if tombs[id] != 1 || mdel[id] != 1 {
			t.Fatalf("reference run: deleted %s has %d tombstones and %d manifest entries, want 1 and 1", id, tombs[id], mdel[id])
		}
	}
	if len(tombs) != len(deleted) {
		t.Fatalf("reference run: tombstones %v, want exactly %v", tombs, deleted)
	}

	transientDups := 0
	for n := 1; ; n++ {
		if n > maxKillPoints {
			t.Fatalf("still killed at write %d: the run never finishes?", n)
		}
		dir := filepath.Join(tmp, fmt.Sprintf("kill-%03d", n))
		copyDir(t, base, dir)
		r := f.exec(t, []string{"EXTRACT_TEST_KILL_AT=" + strconv.Itoa(n)}, f.runArgs(dir, sc.run...)...)
		runs++
		if r.signal == 0 {
			// Fewer than n writes: the run finished, and must be a clean one.
			if r.code != 0 {
				t.Fatalf("EXTRACT_TEST_KILL_AT=%d: not killed and not successful: %s", n, r)
			}
			expectSameAsReference(t, fmt.Sprintf("run with %d writes, not killed", n-1), dir, want, deleted)
			t.Logf("%s: %d write points killed and re-run; %d left duplicate ids visible until the re-run",
				sc.name, n-1, transientDups)
			if n-1 < 5 {
				t.Errorf("only %d write points: the hook no longer sees lock, marker, data, manifest and cleanup", n-1)
			}
			return points, runs
		}
		points++
		if r.elapsed > 3*time.Second {
			t.Logf("EXTRACT_TEST_KILL_AT=%d: the killed run took %s", n, r.elapsed.Round(time.Millisecond))
		}
		if r.signal != syscall.SIGKILL {
			t.Fatalf("EXTRACT_TEST_KILL_AT=%d: ended by %s, want SIGKILL: %s", n, r.signal, r)
		}
		ds, err := readDataset(dir)
		if err != nil {
			t.Errorf("killed before write %d: unreadable or half-written files visible:\n%v", n, err)
			continue
		}
		if _, d := ds.txByID(); len(d) > 0 {
			// Allowed by invariant 5 (the next successful run restores 2): a moved row
			// is in its new partition before it leaves the old one.
			transientDups++
			t.Logf("killed before write %d: duplicate ids visible until the re-run: %v", n, d)
		}
		// A write of another goroutine may be in flight at the kill: its temp file
		// may exist, but no analyst's glob may see it (the re-run removes it; that is
		// checked after the re-run).
		for _, tmp := range ds.temps {
			base := path.Base(tmp)
			for _, glob := range []string{"*.parquet", "*.json"} {
				if ok, _ := path.Match(glob, base); ok || !strings.HasPrefix(base, ".") {
					t.Errorf("killed before write %d: temp file %s is visible to the glob %s", n, tmp, glob)
				}
			}
		}
		if sc.double {
			// The recovery run dies too, at the same write index.
			r2 := f.exec(t, []string{"EXTRACT_TEST_KILL_AT=" + strconv.Itoa(n)}, f.runArgs(dir, sc.run...)...)
			runs++
			if r2.signal == 0 && r2.code != 0 {
				t.Errorf("killed at %d, recovery run (hook at %d) failed: %s", n, n, r2)
				continue
			}
			if _, err := readDataset(dir); err != nil {
				t.Errorf("killed at %d twice: unreadable files:\n%v", n, err)
				continue
			}
		}
		r = f.exec(t, nil, f.runArgs(dir, sc.run...)...)
		runs++
		if r.code != 0 || r.signal != 0 {
			t.Errorf("killed before write %d, the re-run did not succeed: %s", n, r)
			continue
		}
		if r.elapsed > 3*time.Second {
			t.Logf("killed before write %d: the re-run took %s", n, r.elapsed.Round(time.Millisecond))
		}
		expectSameAsReference(t, fmt.Sprintf("killed before write %d, then re-run", n), dir, want, deleted)
	}
}

// crashedState kills the run (args) from base at successive write points until the
// state named by which appears, and returns that directory and the runs made.
func crashedState(t *testing.T, f *fakeAkahu, base, tmp string, args []string, which string) (string, int) {
	t.Helper()
	before := mustReadDataset(t, base)
	prev := ""
	for n := 1; n <= maxKillPoints; n++ {
		dir := filepath.Join(tmp, fmt.Sprintf("precrash-%03d", n))
		copyDir(t, base, dir)
		r := f.exec(t, []string{"EXTRACT_TEST_KILL_AT=" + strconv.Itoa(n)}, f.runArgs(dir, args...)...)
		if r.signal == 0 {
			break
		}
		ds := mustReadDataset(t, dir)
		switch which {
		case "after-tombstones":
			if len(ds.deletions) > len(before.deletions) {
				t.Logf("starting from a run killed before write %d, with its tombstones written", n)
				return dir, n
			}
		case "before-manifest":
			if len(ds.manifests) > len(before.manifests) {
				if prev == "" {
					t.Fatalf("a manifest appears at the first write point")
				}
				t.Logf("starting from a run killed before write %d, its manifest", n-1)
				return prev, n
			}
		default:
			t.Fatalf("unknown pre-crash state %q", which)
		}
		prev = dir
	}
	t.Fatalf("no kill point of %v leaves the state %q", args, which)
	return "", 0
}

// expectSameAsReference checks a dataset after a successful run against the
// reference dataset: same rows, no duplicate, every deleted id in exactly one
// tombstone and one committed manifest, no live id tombstoned, nothing left over.
func expectSameAsReference(t *testing.T, label, dir string, want *dataset, deleted []string) {
	t.Helper()
	ds, err := readDataset(dir)
	if err != nil {
		t.Errorf("%s: %v", label, err)
		return
	}
	wantRows, _ := want.txByID()
	rows, dups := ds.txByID()
	if len(dups) > 0 {
		t.Errorf("%s: duplicate ids in transactions/: %v", label, dups)
	}
	if d := diffRows(wantRows, rows); len(d) > 0 {
		t.Errorf("%s: transactions/ differ from the reference:\n%s", label, strings.Join(d, "\n"))
	}
	tombs, mdel := ds.tombstoneCounts(), ds.manifestDeletions()
	for _, id := range deleted {
		if tombs[id] != 1 {
			t.Errorf("%s: deleted %s has %d tombstone rows in deletions/, want 1", label, id, tombs[id])
		}
		if mdel[id] != 1 {
			t.Errorf("%s: deleted %s is listed %d times across the committed manifests, want 1", label, id, mdel[id])
		}
	}
	wantTombs := want.tombstoneCounts()
	for id, n := range tombs {
		if _, ok := wantTombs[id]; !ok {
			t.Errorf("%s: unexpected tombstone for %s (%d rows)", label, id, n)
		}
		if _, live := rows[id]; live {
			t.Errorf("%s: %s is live in transactions/ and tombstoned in deletions/", label, id)
		}
	}
	for id, n := range mdel {
		if _, ok := wantTombs[id]; !ok {
			t.Errorf("%s: committed manifests list %s as deleted %d times; the reference deleted no such id", label, id, n)
		}
	}
	if ds.pendingRows != want.pendingRows {
		t.Errorf("%s: pending/ has %d rows, the reference %d", label, ds.pendingRows, want.pendingRows)
	}
	if ds.accountRows == 0 {
		t.Errorf("%s: no account snapshot rows", label)
	}
	if len(ds.inflight) > 0 || len(ds.temps) > 0 || len(ds.locks) > 0 {
		t.Errorf("%s: leftovers: in-flight %v, temp files %v, locks %v", label, ds.inflight, ds.temps, ds.locks)
	}
}

// scriptBankChanges changes the fake like a bank would between two runs, inside the
// last two months of its history: two deletions (in two months and two users), a
// re-identified transaction, moves across the August/September boundary both ways, a
// changed description, a new transaction and a settled pending one. It returns the
// ids that are gone (deleted or re-identified).
func scriptBankChanges(t *testing.T, f *fakeAkahu) []string {
	t.Helper()
	aug, sep := nzDate(2026, 8, 1), nzDate(2026, 9, 1)
	users := f.srv.Users()
	acct, augTx, sepTx := pickBusyAccount(t, f, users[0].ID, aug, sep)
	_, augTx2, _ := pickBusyAccount(t, f, users[1].ID, aug, sep)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	gone := []string{sepTx[0].ID, augTx2[0].ID, sepTx[1].ID}
	must(f.srv.DeleteTransaction(sepTx[0].ID))
	must(f.srv.DeleteTransaction(augTx2[0].ID))
	if _, err := f.srv.ReplaceID(sepTx[1].ID); err != nil {
		t.Fatal(err)
	}
	must(f.srv.SetDescription(augTx[0].ID, "Countdown Ōtaki — corrected 🧾"))
	must(f.srv.MoveDate(augTx[1].ID, nzDate(2026, 9, 3)))  // August → September
	must(f.srv.MoveDate(sepTx[2].ID, nzDate(2026, 8, 30))) // September → August
	// June → September: from a month an incremental run of the last two months does
	// not read, so its partition is rewritten last, after September's.
	jun := akahu.LocalDates(nzDate(2026, 6, 1), nzDate(2026, 6, 30), nzTime)
	junTx := f.srv.Settled(acct, jun.Start, jun.End)
	if len(junTx) == 0 {
		t.Fatalf("account %s has no June transaction to move", acct)
	}
	must(f.srv.MoveDate(junTx[0].ID, nzDate(2026, 9, 5)))
	f.srv.AddTransaction(acct, nzDate(2026, 9, 14), "-42.5", "New World Thorndon")
	if _, err := f.srv.SettlePending(acct); err != nil {
		t.Logf("no pending transaction to settle on %s: %v", acct, err)
	}
	return gone
}

// pickBusyAccount returns an account of the user with at least four settled
// transactions in each of the months starting at a and b.
func pickBusyAccount(t *testing.T, f *fakeAkahu, userID string, a, b time.Time) (string, []akahutest.Txn, []akahutest.Txn) {
	t.Helper()
	for _, id := range f.srv.AccountIDs(userID) {
		wa := akahu.LocalDates(a, a.AddDate(0, 1, -1), nzTime)
		wb := akahu.LocalDates(b, b.AddDate(0, 1, -1), nzTime)
		ta, tb := f.srv.Settled(id, wa.Start, wa.End), f.srv.Settled(id, wb.Start, wb.End)
		if len(ta) >= 4 && len(tb) >= 4 {
			return id, ta, tb
		}
	}
	t.Fatalf("user %s has no account with transactions in %s and %s", userID, a.Format("2006-01"), b.Format("2006-01"))
	return "", nil, nil
}

// TestBinaryKilledAfterCommit kills a run after its manifest is written but before
// its in-flight marker is removed. The run is committed: its manifest lists its
// deletions and its tombstone objects. The next run must not treat it as crashed:
// each deletion stays recorded once, by the run that removed the row (invariant 3).
func TestBinaryKilledAfterCommit(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(22))
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	f.runOK(t, base, f.rangeArgs()...)
	deleted := scriptBankChanges(t, f)
	run := []string{"--start", "2026-08-01", "--end", "2026-09-30"}

	// Find the write point between commit and cleanup: after the kill there is a
	// manifest of a run whose in-flight marker is still there.
	var dir, killed string
	for n := 1; killed == ""; n++ {
		if n > maxKillPoints {
			t.Fatal("no kill point leaves a committed run with its in-flight marker")
		}
		dir = filepath.Join(tmp, fmt.Sprintf("kill-%03d", n))
		copyDir(t, base, dir)
		r := f.exec(t, []string{"EXTRACT_TEST_KILL_AT=" + strconv.Itoa(n)}, f.runArgs(dir, run...)...)
		if r.signal == 0 {
			t.Fatalf("EXTRACT_TEST_KILL_AT=%d: the run finished (%s) before any kill left a committed run's marker", n, r)
		}
		ds := mustReadDataset(t, dir)
		for _, m := range ds.manifests {
			if ds.hasFile("_inflight/" + m.RunID + ".json") {
				killed = m.RunID
				t.Logf("EXTRACT_TEST_KILL_AT=%d: run %s committed, killed before removing its in-flight marker", n, killed)
			}
		}
	}

	r := f.runOK(t, dir, run...)
	m := committedRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("re-run printed no commit summary: %s", r)
	}
	rerun := m[1]
	ds := mustReadDataset(t, dir)
	mdel := ds.manifestDeletions()
	by := map[string][]string{}
	for _, row := range ds.deletions {
		by[row.ID] = append(by[row.ID], row.DeletedBy)
	}
	for _, id := range deleted {
		if mdel[id] != 1 {
			t.Errorf("deleted %s is listed %d times across the committed manifests (killed run %s and re-run %s), want 1",
				id, mdel[id], killed, rerun)
		}
		if len(by[id]) != 1 || by[id][0] != killed {
			t.Errorf("deleted %s: tombstones recorded by runs %v, want once by %s, the run that removed it", id, by[id], killed)
		}
	}
	for _, mf := range ds.manifests {
		if mf.RunID == rerun && (len(mf.Deleted) > 0 || mf.Counts.Deleted != 0) {
			t.Errorf("re-run %s over unchanged data reports %d deletions (%d listed) already committed by %s",
				rerun, mf.Counts.Deleted, len(mf.Deleted), killed)
		}
		if mf.RunID != killed {
			continue
		}
		for _, o := range mf.Objects {
			if o.Op == "put" && strings.HasPrefix(o.Path, "deletions/") && !ds.hasFile(o.Path) {
				t.Errorf("committed manifest %s lists %s, which a later run deleted", killed, o.Path)
			}
		}
	}
	if len(ds.inflight) > 0 {
		t.Errorf("in-flight markers left: %v", ds.inflight)
	}
}
