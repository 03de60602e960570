package pipeline

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/akahu-etl/akahu-parquet/schema"
)

// TestSortTx checks the merge's row order: account, then posting time, then id,
// whatever record a row comes from and whatever order the rows arrive in.
func TestSortTx(t *testing.T) {
	cols := newTxCols(schema.Transactions())
	first := records(t, "run-1",
		tx{"trans_c", "acc_b", "2026-02-03", "1", "x"},
		tx{"trans_a", "acc_a", "2026-02-05", "1", "x"},
		tx{"trans_b", "acc_a", "2026-02-03", "1", "x"},
	)
	second := records(t, "run-1",
		tx{"trans_9", "acc_a", "2026-02-05", "1", "x"},
		tx{"trans_d", "acc_b", "2026-02-01", "1", "x"},
		tx{"trans_e", "acc_a", "2026-02-03", "1", "x"},
	)
	tbl := &table{schema: schema.Transactions()}
	refs := addRecords(tbl, append(first, second...), nil)
	defer tbl.release()
	want := []string{"trans_b", "trans_e", "trans_9", "trans_a", "trans_d", "trans_c"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		rows := slices.Clone(refs)
		if i > 0 {
			rng.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
		}
		sortTx(tbl, cols, rows)
		var got []string
		for _, r := range rows {
			got = append(got, tbl.str(r, cols.id))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("order %d: got %v, want %v", i, got, want)
		}
	}
}
