package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	parquetsink "github.com/akahu-etl/akahu-parquet/sinks/parquet"
)

// ptx is a transaction for the ranged check's tests; updated "" is a null updated_at.
type ptx struct{ id, acct, day, updated string }

func probeRecords(t *testing.T, mem memory.Allocator, txs []ptx) []arrow.Record {
	t.Helper()
	if len(txs) == 0 {
		return nil
	}
	b := schema.NewTransactionBuilder(mem, schema.Options{RunID: "run_1", ExtractedAt: time.Unix(0, 0)})
	defer b.Release()
	for i, x := range txs {
		d, _ := time.ParseInLocation(time.DateOnly, x.day, mustZone(t))
		updated := ""
		if x.updated != "" {
			updated = fmt.Sprintf(`"updated_at":%q,`, x.updated)
		}
		// Descriptions that do not compress make a file larger than the footer read.
		item := fmt.Sprintf(`{"_id":%q,"_user":"user_1","_account":%q,"_connection":"conn_1","date":%q,`+
			`"created_at":"2026-01-01T00:00:00.000Z",%s"description":"%x","amount":-1.5,"type":"DEBIT"}`,
			x.id, x.acct, d.UTC().Format("2006-01-02T15:04:05.000Z"), updated, uint64(i+1)*0x9e3779b97f4a7c15)
		if err := b.Append([]byte(item), "NZD"); err != nil {
			t.Fatal(err)
		}
	}
	return []arrow.Record{b.NewRecord()}
}

// TestUnchangedByRange: the ranged check says a partition is unchanged exactly when a
// merge would keep every old row as it is, and reads no more than the footer and its
// columns' chunks.
func TestUnchangedByRange(t *testing.T) {
	const stamp = "2026-02-20T00:00:00.000Z"
	var stored []ptx
	for i := range 600 {
		acct := "acc_a"
		if i >= 360 {
			acct = "acc_b"
		}
		// ids in order within each account and day: the merge's order.
		stored = append(stored, ptx{fmt.Sprintf("trans_%s_%03d", acct, i), acct, fmt.Sprintf("2026-02-%02d", 1+i%360/15), stamp})
	}
	ofAcct := func(acct string) []ptx {
		var out []ptx
		for _, x := range stored {
			if x.acct == acct {
				out = append(out, x)
			}
		}
		return out
	}
	feb := map[string]span{"acc_a": {dayOf(2026, 2, 1), dayOf(2026, 2, 28)}}
	with := func(txs []ptx, more ...ptx) []ptx { return append(append([]ptx(nil), txs...), more...) }
	changed := func(txs []ptx, i int, f func(*ptx)) []ptx {
		out := with(txs)
		f(&out[i])
		return out
	}
	onlyA := ofAcct("acc_a")
	tests := []struct {
		name      string
		file      []ptx
		fresh     []ptx
		reread    map[string]span
		unchanged bool
		// footerOnly: with day digests in the file, the footer alone tells.
		footerOnly bool
	}{
		{"every row of the file returned as stored", onlyA, onlyA, feb, true, true},
		{"every row returned, the re-read dates wider than the month", onlyA, onlyA,
			map[string]span{"acc_a": {dayOf(2026, 1, 20), dayOf(2026, 3, 10)}}, true, true},
		{"rows returned beyond the re-read dates", onlyA, onlyA,
			map[string]span{"acc_a": {dayOf(2026, 2, 1), dayOf(2026, 2, 10)}}, true, false},
		{"one account's rows, only it re-read", onlyA, onlyA[:150],
			map[string]span{"acc_a": {dayOf(2026, 2, 1), dayOf(2026, 2, 10)}, "acc_z": {dayOf(2026, 1, 1), dayOf(2026, 1, 31)}}, true, true},
		{"a row missing from a file of one account", onlyA, onlyA[1:], feb, false, false},
		{"a row new to a file of one account", onlyA, with(onlyA, ptx{"trans_new", "acc_a", "2026-02-27", stamp}), feb, false, false},
		{"a row twice in place of another", onlyA, with(onlyA[1:], onlyA[7]), feb, false, false},
		{"a later updated_at in a file of one account", onlyA, changed(onlyA, 3, func(x *ptx) { x.updated = "2026-02-21T00:00:00.000Z" }), feb, false, false},
		{"another date in a file of one account", onlyA, changed(onlyA, 3, func(x *ptx) { x.day = "2026-02-28" }), feb, false, false},
		{"a row of an account not re-read on its day", stored, onlyA, feb, true, false},
		{"every row returned as stored", stored, ofAcct("acc_a"), feb, true, false},
		{"rows of another account not re-read", stored, ofAcct("acc_a")[:0], map[string]span{"acc_c": feb["acc_a"]}, true, false},
		{"missing rows outside the re-read dates", stored, ofAcct("acc_a")[:150],
			map[string]span{"acc_a": {dayOf(2026, 2, 1), dayOf(2026, 2, 10)}}, true, false},
		{"a row missing (deleted or moved)", stored, ofAcct("acc_a")[1:], feb, false, false},
		{"a row new to the file", stored, with(ofAcct("acc_a"), ptx{"trans_new", "acc_a", "2026-02-27", stamp}), feb, false, false},
		{"a row returned twice", stored, with(ofAcct("acc_a"), ofAcct("acc_a")[7]), feb, false, false},
		{"a later updated_at", stored, changed(ofAcct("acc_a"), 3, func(x *ptx) { x.updated = "2026-02-21T00:00:00.000Z" }), feb, false, false},
		{"no updated_at from Akahu", stored, changed(ofAcct("acc_a"), 3, func(x *ptx) { x.updated = "" }), feb, false, false},
		{"no updated_at stored", changed(stored, 3, func(x *ptx) { x.updated = "" }), ofAcct("acc_a"), feb, false, false},
		{"another date, same updated_at", stored, changed(ofAcct("acc_a"), 3, func(x *ptx) { x.day = "2026-02-28" }), feb, false, false},
		{"a stored id twice", with(stored[:450], stored[449]), ofAcct("acc_a"), feb, false, false},
		{"stored out of the merge's order", append(with(stored[1:]), stored[0]), ofAcct("acc_a"), feb, false, false},
		{"a file as small as the footer read", stored[:10], stored[:10], feb, false, false},
	}
	ctx := context.Background()
	for _, tc := range tests {
		for _, digests := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/digests=%v", tc.name, digests), func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				b := bucket.NewMemory()
				reads := &readCounter{Bucket: b}
				sch := schema.Transactions()
				r := &runner{b: reads, mem: mem, txSch: sch, cols: newTxCols(sch), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
				key := partKey{month{2026, 2}, 0}
				recs := probeRecords(t, mem, tc.file)
				var opts []parquetsink.Option
				if digests {
					tb := &table{schema: sch, recs: recs}
					var rows []rowRef
					for src, rec := range recs {
						for i := range int(rec.NumRows()) {
							rows = append(rows, rowRef{int32(src), int32(i)})
						}
					}
					d, ok := digestRows(newTxCols(sch), tb, rows, key.month)
					if ok {
						opts = append(opts, parquetsink.WithKeyValue(digestsKey, d.String()))
					}
				}
				data, _, err := encodeParquet(sch, recs, opts...)
				for _, rec := range recs {
					rec.Release()
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.Put(ctx, txObject(key), data, bucket.Condition{}); err != nil {
					t.Fatal(err)
				}
				fresh := probeRecords(t, mem, tc.fresh)
				defer func() {
					for _, rec := range fresh {
						rec.Release()
					}
				}()
				same, ok := r.unchangedByRange(ctx, key, fresh, tc.reread)
				if ok != tc.unchanged {
					t.Fatalf("unchanged %v, want %v", ok, tc.unchanged)
				}
				if n := len(tc.fresh); ok && same != n {
					t.Errorf("%d unchanged, want %d", same, n)
				}
				st := reads.stats()
				if st.Objects != 0 || (len(data) > 8<<10 && st.Bytes >= int64(len(data))) {
					t.Errorf("read %+v of a %d-byte file", st, len(data))
				}
				// The footer alone with digests that tell; without them (a file written
				// before them), the footer and the columns.
				footer := max(parquetsink.TailBytes, int64(binary.LittleEndian.Uint32(data[len(data)-8:]))+8)
				if fromFooter := st.Bytes <= footer; len(data) > parquetsink.TailBytes && fromFooter != (digests && tc.footerOnly) {
					t.Errorf("%d B read of a %d-byte file with a %d-byte footer read, digests %v", st.Bytes, len(data), footer, digests)
				}
				t.Logf("file %d B: %d B read in %d ranges", len(data), st.Bytes, st.Ranges)
			})
		}
	}
}
