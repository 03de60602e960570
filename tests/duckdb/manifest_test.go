package duckdb_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/akahu-etl/akahu-parquet/pipeline"
)

// TestManifest reads the run manifests with read_json_auto, as an analyst auditing runs
// would, and checks that what they claim agrees with the data files.
func TestManifest(t *testing.T) {
	d := newDataset(t)
	db := openDuckDB(t, "UTC")
	manifests := fmt.Sprintf("read_json_auto(%s)", d.glob("_manifests/*.json"))
	tx := d.transactions()

	m1 := d.run(t)
	t.Run("backfill counts", func(t *testing.T) {
		checkManifestRows(t, db, manifests, []string{m1.RunID})
		c := manifestCounts(t, db, manifests, m1.RunID)
		want := map[string]int64{
			"inserted": queryInt(t, db, "SELECT count(*) FROM "+tx),
			"updated":  0, "moved": 0, "deleted": 0, "unchanged": 0,
			"pending":      queryInt(t, db, "SELECT count(*) FROM read_parquet("+d.glob("pending/*.parquet")+")"),
			"accounts":     queryInt(t, db, "SELECT count(*) FROM read_parquet("+d.glob("accounts/**/*.parquet")+")"),
			"deleted_list": 0,
		}
		compareCounts(t, m1.RunID, c, want)
		if want["inserted"] != int64(d.settledCount()) {
			t.Errorf("inserted %d, want the fake's %d", want["inserted"], d.settledCount())
		}
		// The backfill wrote every transactions file, and listed each one.
		files := queryStrings(t, db, "SELECT DISTINCT filename FROM read_parquet("+d.glob("transactions/**/*.parquet")+", filename = true) ORDER BY 1")
		listed := queryStrings(t, db, `SELECT o.path FROM (SELECT unnest(objects) AS o FROM `+manifests+` WHERE run_id = ?)
			WHERE o.kind = 'transactions' AND o.op = 'put' ORDER BY 1`, m1.RunID)
		for i := range listed {
			listed[i] = filepath.ToSlash(filepath.Join(d.dir, listed[i]))
		}
		for i := range files {
			files[i] = filepath.ToSlash(files[i])
		}
		sort.Strings(files)
		sort.Strings(listed)
		if fmt.Sprint(files) != fmt.Sprint(listed) {
			t.Errorf("transactions files %d, manifest lists %d:\nfiles  %v\nlisted %v", len(files), len(listed), files, listed)
		}
		checkObjects(t, d, db, manifests, m1.RunID, "transactions", "pending", "accounts")
	})

	c := scriptChanges(t, d)
	d.cfg.Start, d.cfg.End = "", ""
	m2 := d.run(t)
	t.Run("incremental counts", func(t *testing.T) {
		checkManifestRows(t, db, manifests, []string{m1.RunID, m2.RunID})
		got := manifestCounts(t, db, manifests, m2.RunID)
		del := queryInt(t, db, "SELECT count(*) FROM "+d.deletions()+" WHERE deleted_by_run = ?", m2.RunID)
		compareCounts(t, m2.RunID, got, map[string]int64{
			"inserted": 3, "updated": 1, "moved": int64(len(c.moved)), "deleted": del, "deleted_list": del,
			"pending":  queryInt(t, db, "SELECT count(*) FROM read_parquet("+d.glob("pending/*.parquet")+")"),
			"accounts": int64(len(d.accountIDs())),
		})
		if del != int64(len(c.deleted)) {
			t.Errorf("%d tombstones by %s, want %d", del, m2.RunID, len(c.deleted))
		}
		// The manifest's deleted list and the deletions/ files name the same ids.
		q := `SELECT count(*) FROM ((SELECT d.id FROM (SELECT unnest(deleted) AS d FROM ` + manifests + ` WHERE run_id = $1))
			EXCEPT (SELECT id FROM ` + d.deletions() + ` WHERE deleted_by_run = $1))`
		if n := queryInt(t, db, q, m2.RunID); n != 0 {
			t.Errorf("%d ids in the manifest's deleted list have no tombstone file row", n)
		}
		q = `SELECT count(*) FROM ((SELECT id FROM ` + d.deletions() + ` WHERE deleted_by_run = $1)
			EXCEPT (SELECT d.id FROM (SELECT unnest(deleted) AS d FROM ` + manifests + ` WHERE run_id = $1)))`
		if n := queryInt(t, db, q, m2.RunID); n != 0 {
			t.Errorf("%d tombstone rows are not in the manifest's deleted list", n)
		}
		// The account snapshot of the same day did not change, so it is not rewritten.
		checkObjects(t, d, db, manifests, m2.RunID, "transactions", "deletions", "pending")
	})
}

// checkManifestRows asserts read_json_auto sees exactly these runs, in order.
func checkManifestRows(t *testing.T, db *sql.DB, manifests string, runIDs []string) {
	t.Helper()
	got := queryStrings(t, db, "SELECT run_id FROM "+manifests+" ORDER BY run_id")
	if fmt.Sprint(got) != fmt.Sprint(runIDs) {
		t.Fatalf("manifests for runs %v, want %v", got, runIDs)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM "+manifests+" WHERE manifest_version <> ? OR schema_version IS NULL", pipeline.ManifestVersion); n != 0 {
		t.Errorf("%d manifests with another manifest_version or no schema_version", n)
	}
}

// manifestCounts reads one run's counts through DuckDB's JSON reader.
func manifestCounts(t *testing.T, db *sql.DB, manifests, runID string) map[string]int64 {
	t.Helper()
	var ins, upd, unch, mov, del, pend, acc, list int64
	err := db.QueryRow(`SELECT counts.inserted, counts.updated, counts.unchanged, counts.moved, counts.deleted,
		counts.pending, counts.accounts, coalesce(len(deleted), 0) FROM `+manifests+` WHERE run_id = ?`, runID).
		Scan(&ins, &upd, &unch, &mov, &del, &pend, &acc, &list)
	if err != nil {
		t.Fatalf("counts of %s: %v", runID, err)
	}
	return map[string]int64{"inserted": ins, "updated": upd, "unchanged": unch, "moved": mov, "deleted": del,
		"pending": pend, "accounts": acc, "deleted_list": list}
}

func compareCounts(t *testing.T, runID string, got, want map[string]int64) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("manifest %s: %s = %d, want %d", runID, k, got[k], w)
		}
	}
}

// checkObjects asserts every object a run put still has the rows and bytes the manifest
// claims (true for the latest run; the objects are what readers see).
func checkObjects(t *testing.T, d *dataset, db *sql.DB, manifests, runID string, wantKinds ...string) {
	t.Helper()
	rows, err := db.Query(`SELECT o.path, o.kind, o.rows, o.bytes FROM (SELECT unnest(objects) AS o FROM `+manifests+` WHERE run_id = ?)
		WHERE o.op = 'put' ORDER BY 1`, runID)
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		path, kind  string
		rows, bytes int64
	}
	var objs []object
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.path, &o.kind, &o.rows, &o.bytes); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind]++
		full := filepath.Join(d.dir, filepath.FromSlash(o.path))
		fi, err := os.Stat(full)
		if err != nil {
			t.Errorf("manifest %s lists %s: %v", runID, o.path, err)
			continue
		}
		if fi.Size() != o.bytes {
			t.Errorf("%s: %d bytes on disk, manifest says %d", o.path, fi.Size(), o.bytes)
		}
		if n := queryInt(t, db, "SELECT count(*) FROM read_parquet("+quote(filepath.ToSlash(full))+")"); n != o.rows {
			t.Errorf("%s: DuckDB reads %d rows, manifest says %d", o.path, n, o.rows)
		}
	}
	for _, k := range wantKinds {
		if kinds[k] == 0 {
			t.Errorf("manifest %s lists no %s object", runID, k)
		}
	}
}
