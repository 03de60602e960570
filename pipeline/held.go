package pipeline

import (
	"fmt"
	"strings"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This file holds the held partitions: merged partitions that may lose rows (an old
// row of a re-read account that Akahu no longer returned is a deletion candidate),
// held back until the reconcile stage has decided every candidate, and then written
// once.
//
// A daily run holds every partition of its window that lost a row, and a held
// partition is the whole month of its bucket: held in memory, they made a dense
// shard's peak follow how many dense partitions happened to lose a row. They stay in
// memory up to Config.HeldBytes; beyond it a partition is parked: its records go to
// the spill file as one Arrow IPC stream, uncompressed and streamed from their
// buffers (spill.park: no copy), and are released, and the stage that needs
// them reads them back, one partition at a time, and lets them go again. Its
// candidates' ids and accounts stay in memory (heldCand), so deciding them needs no
// table. A parked partition's records come back in the same order and sizes, so its
// row references (rows, candidates, fresh rows) stay valid.

// heldPart is a merged partition held back to the end because it may lose rows.
type heldPart struct {
	key  partKey
	prev *bucket.Attrs
	res  *mergeResult
	// cands are res.candidates with their ids and accounts, copied: what deciding
	// them needs, in memory whether or not the table is.
	cands []heldCand
	// seg is where the table waits while parked (nil: in memory), nrecs how many
	// records it has; mem is the bytes counted against the held budget while in
	// memory.
	seg   *segment
	nrecs int
	mem   int64
}

// heldCand is a deletion candidate of a held partition.
type heldCand struct {
	row         rowRef
	id, account string
}

// keepHeld notes h's candidates and keeps its table in memory if the held budget
// allows, or parks it. A park that fails (the spill's disk) keeps it in memory:
// the budget is exceeded, nothing is lost.
func (r *runner) keepHeld(h *heldPart) {
	h.cands = h.cands[:0]
	for _, c := range h.res.candidates {
		h.cands = append(h.cands, heldCand{row: c,
			id:      strings.Clone(h.res.t.str(c, r.cols.id)),
			account: strings.Clone(h.res.t.str(c, r.cols.account))})
	}
	size := int64(0)
	for _, rec := range h.res.t.recs {
		size += recordSize(rec)
	}
	r.mu.Lock()
	fits := r.heldMem+size <= r.cfg.HeldBytes
	if fits {
		r.heldMem += size // reserved at once: two mergers may hold at the same time
	}
	r.mu.Unlock()
	if !fits {
		seg, err := r.spill.park(h.res.t.recs)
		if err == nil {
			h.seg, h.nrecs = seg, len(h.res.t.recs)
			h.res.t.release()
			return
		}
		r.log.Warn("cannot park a held partition in the spill file; it stays in memory", "object", txObject(h.key), "err", err)
		r.mu.Lock()
		r.heldMem += size
		r.mu.Unlock()
	}
	h.mem = size
}

// rehold keeps h again after it changed (a later re-read merged into it): its old
// place, in memory or in the spill, no longer holds its table.
func (r *runner) rehold(h *heldPart) {
	if h.seg != nil {
		h.seg = nil // the parked copy is stale; the table in memory is current
	} else {
		r.mu.Lock()
		r.heldMem -= h.mem
		r.mu.Unlock()
		h.mem = 0
	}
	r.keepHeld(h)
}

// loadHeld brings a parked partition's table back into memory (a no-op if it is
// there); unloadHeld lets a parked partition's table go again.
func (r *runner) loadHeld(h *heldPart) error {
	if h.seg == nil || h.res.t.recs != nil {
		return nil
	}
	recs, err := r.spill.read(h.seg)
	if err == nil && len(recs) != h.nrecs {
		err = fmt.Errorf("read back %d records, want %d", len(recs), h.nrecs)
		for _, rec := range recs {
			rec.Release()
		}
	}
	if err != nil {
		return fmt.Errorf("held partition %s: %w", txObject(h.key), err)
	}
	h.res.t.recs = recs
	return nil
}

func (r *runner) unloadHeld(h *heldPart) {
	if h.seg != nil {
		h.res.t.release()
	}
}

// eachHeld calls fn with every held partition in turn, its table in memory, and
// lets a parked one go again after.
func (r *runner) eachHeld(fn func(i int, h *heldPart) error) error {
	for i, h := range r.deferred {
		if err := r.loadHeld(h); err != nil {
			return err
		}
		err := fn(i, h)
		r.unloadHeld(h)
		if err != nil {
			return err
		}
	}
	return nil
}
