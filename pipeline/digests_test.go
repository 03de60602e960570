package pipeline

import (
	"reflect"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/akahu-etl/akahu-parquet/schema"
)

// TestDayDigestsText: digests survive their text form, and only the text they are
// written as is accepted.
func TestDayDigestsText(t *testing.T) {
	nov := month{2026, 11}
	tests := []struct {
		name string
		d    dayDigests
		text string
	}{
		{"no day", dayDigests{nov, map[day]dayDigest{}}, "v1;2026-11;"},
		{"one day", dayDigests{nov, map[day]dayDigest{dayOf(2026, 11, 1): {12, 0x9f3a}}}, "v1;2026-11;01:12:0000000000009f3a"},
		{"days in order", dayDigests{month{2024, 2}, map[day]dayDigest{
			dayOf(2024, 2, 29): {1, ^uint64(0)}, dayOf(2024, 2, 3): {300, 1}}},
			"v1;2024-02;03:300:0000000000000001,29:1:ffffffffffffffff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.String(); got != tc.text {
				t.Fatalf("encoded %q, want %q", got, tc.text)
			}
			back, err := parseDayDigests(tc.text)
			if err != nil || !reflect.DeepEqual(back, tc.d) {
				t.Fatalf("decoded %+v, %v; want %+v", back, err, tc.d)
			}
		})
	}
	for _, bad := range []string{
		"", "v2;2026-11;01:1:0000000000000001", "v1;2026-11", "v1;2026-13;", "v1;2026-1;", "v1;2026-11;;",
		"v1;2026-11;01:1:0000000000000001,", "v1;2026-11;1:1:0000000000000001", "v1;2026-11;00:1:0000000000000001",
		"v1;2026-11;31:1:0000000000000001", "v1;2026-02;29:1:0000000000000001", "v1;2026-11;02:1:0000000000000001,01:1:0000000000000001",
		"v1;2026-11;01:1:0000000000000001,01:1:0000000000000001", "v1;2026-11;01:0:0000000000000001",
		"v1;2026-11;01:01:0000000000000001", "v1;2026-11;01:+1:0000000000000001", "v1;2026-11;01:-1:0000000000000001",
		"v1;2026-11;01:1:000000000000001", "v1;2026-11;01:1:000000000000000G", "v1;2026-11;01:1:000000000000000A",
		"v1;2026-11;+1:1:0000000000000001", "v1;2026-11;01:1:0000000000000001:7", "v1;2026-11;01:1:0000000000000001;x",
	} {
		if d, err := parseDayDigests(bad); err == nil {
			t.Errorf("accepted %q as %+v", bad, d)
		}
	}
}

// TestDigestRows: a partition's digests count its rows per local day and change with
// any of the hashed fields; a null updated_at or a day outside the month gives none.
func TestDigestRows(t *testing.T) {
	const stamp = "2026-02-20T00:00:00.000Z"
	base := []ptx{{"trans_1", "acc_a", "2026-02-01", stamp}, {"trans_2", "acc_a", "2026-02-01", stamp}, {"trans_3", "acc_b", "2026-02-09", stamp}}
	sch := schema.Transactions()
	cols := newTxCols(sch)
	digest := func(t *testing.T, txs []ptx, mon month) (dayDigests, bool) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		tb := &table{schema: sch}
		defer tb.release()
		var rows []rowRef
		for _, rec := range probeRecords(t, mem, txs) {
			rows = addRecords(tb, []arrow.Record{rec}, rows)
		}
		return digestRows(cols, tb, rows, mon)
	}
	feb := month{2026, 2}
	d, ok := digest(t, base, feb)
	if !ok || len(d.days) != 2 || d.days[dayOf(2026, 2, 1)].rows != 2 || d.days[dayOf(2026, 2, 9)].rows != 1 {
		t.Fatalf("digests %+v, %v", d, ok)
	}
	// The same rows in another order have the same digests.
	if again, _ := digest(t, []ptx{base[2], base[1], base[0]}, feb); !reflect.DeepEqual(again, d) {
		t.Errorf("reordered rows: %v, want %v", again, d)
	}
	changes := map[string]func(*ptx){
		"id":                          func(x *ptx) { x.id = "trans_9" },
		"id and account run together": func(x *ptx) { x.id, x.acct = "trans_1a", "cc_a" },
		"account":                     func(x *ptx) { x.acct = "acc_c" },
		"updated_at":                  func(x *ptx) { x.updated = "2026-02-20T00:00:00.001Z" },
	}
	for name, change := range changes {
		txs := append([]ptx(nil), base...)
		change(&txs[0])
		if got, ok := digest(t, txs, feb); !ok || got.days[dayOf(2026, 2, 1)] == d.days[dayOf(2026, 2, 1)] {
			t.Errorf("%s changed: digests %v, %v, as before %v", name, got, ok, d)
		}
	}
	// date and date_local move together in these rows: another day moves the row.
	moved := append([]ptx(nil), base...)
	moved[0].day = "2026-02-09"
	if got, _ := digest(t, moved, feb); got.days[dayOf(2026, 2, 9)] == d.days[dayOf(2026, 2, 9)] {
		t.Errorf("a row moved: digests %v, as before %v", got, d)
	}
	nullStamp := append([]ptx(nil), base...)
	nullStamp[2].updated = ""
	if got, ok := digest(t, nullStamp, feb); ok {
		t.Errorf("a null updated_at: digests %v", got)
	}
	if got, ok := digest(t, base, month{2026, 3}); ok {
		t.Errorf("rows of another month: digests %v", got)
	}
}

// FuzzParseDayDigests: the digests' decoder reads text from files; it never panics,
// and what it accepts is written back as the same text.
func FuzzParseDayDigests(f *testing.F) {
	for _, s := range []string{"v1;2026-11;01:12:9f3a0000000000aa,02:1:0000000000000000", "v1;2024-02;29:1:ffffffffffffffff",
		"v1;2026-11;", "v1;2026-11;01:1:0000000000000001,01:1:0000000000000001", "v2;x;y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDayDigests(s)
		if err != nil {
			return
		}
		if got := d.String(); got != s {
			t.Fatalf("accepted %q, writes it as %q", s, got)
		}
		for dd := range d.days {
			if dd.month() != d.mon || d.days[dd].rows <= 0 {
				t.Fatalf("accepted %q: day %s of %s, %+v", s, dd, d.mon, d.days[dd])
			}
		}
	})
}
