package pipeline_test

import (
	"testing"
)

// TestChainedFarMoves: the month a by-id lookup sends the run to re-read may itself have
// lost a row that moved further away. That row is decided like every other candidate
// (by id at Akahu), not taken for a deletion: it is a move, recorded in no tombstone,
// and its new month is re-read so it stays in the dataset.
func TestChainedFarMoves(t *testing.T) { heldCases(t, testChainedFarMoves) }

func testChainedFarMoves(t *testing.T, heldBytes int64) {
	b := newLocal(t)
	h := newHarness(t, b, smallPopulation())
	h.heldBytes = heldBytes
	from, to := h.opts.From, h.opts.To
	h.run(from, to)
	feb, oct := date(2026, 2, 1), date(2025, 10, 1)
	acct, febTx, octTx := h.pickAccount(feb, oct)
	_ = acct
	first, second := febTx[2].ID, octTx[2].ID
	// February → October (found by id: October is re-read), and October → December
	// (a month the run reads only if it asks Akahu about the row October lost).
	must(t, h.srv.MoveDate(first, date(2025, 10, 20)))
	must(t, h.srv.MoveDate(second, date(2025, 12, 9)))

	m := h.run(feb, to)
	h.expectParked(m)
	rows := h.expectFaithful(from, to)
	for id, want := range map[string]string{first: "2025-10-20", second: "2025-12-09"} {
		if r, ok := rows[id]; !ok || r.DateLocal != want {
			t.Errorf("%s: present %v, dated %s in %s; want %s", id, ok, r.DateLocal, r.Object, want)
		}
	}
	if m.Counts.Moved != 2 || m.Counts.Deleted != 0 || m.Counts.Inserted != 0 {
		t.Errorf("counts %+v, want 2 moved and nothing inserted or deleted", m.Counts)
	}
	expectTombstones(t, b, map[string]int{})
}
