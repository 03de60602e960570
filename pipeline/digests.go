package pipeline

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
)

// This file holds the day digests a transactions partition carries in its footer, under
// the key-value key digestsKey: for each local day (date_local) with rows, the number of
// rows and the sum, mod 2^64, of a 64-bit hash of each row's id, account_id, date,
// date_local and updated_at. The merge's ranged check computes the same digests over
// the fresh rows and, when they agree on every day re-read, knows the partition
// unchanged from its footer alone (unchanged.go). A partition with a null updated_at
// carries none.
//
// The text is versioned and compact: "v1;2026-11;01:12:<sum>,02:3:<sum>", that is the
// month, then per day in ascending order its day of the month (two digits), its row
// count (decimal) and its sum (16 lowercase hex digits). A file written before the
// digests existed, or whose digests do not parse, is checked by its columns instead.

// digestsKey is the footer key-value key of a transactions partition's day digests.
const digestsKey = "akahu_parquet.day_digests"

// digestsVersion prefixes the digests' text; another version is not understood.
const digestsVersion = "v1"

// dayDigest is one local day's row count and sum of row hashes.
type dayDigest struct {
	rows int64
	sum  uint64
}

// dayDigests are the digests of one month's partition.
type dayDigests struct {
	mon  month
	days map[day]dayDigest
}

// rowHasher hashes the rows of a partition: FNV-1a 64 over the fields, each string
// prefixed with its length so that fields cannot run together, then a finalizer
// (MurmurHash3's fmix64) so that a change in any byte changes the whole hash and the
// sums of different rows do not cancel out.
type rowHasher struct {
	buf []byte
	f   hash.Hash64
}

// hash returns the hash of one row; date and updated are the columns' values
// (microseconds since the epoch), dateLocal days since the epoch.
func (h *rowHasher) hash(id, account string, date, dateLocal, updated int64) uint64 {
	b := h.buf[:0]
	b = binary.LittleEndian.AppendUint64(b, uint64(len(id)))
	b = append(b, id...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(account)))
	b = append(b, account...)
	b = binary.LittleEndian.AppendUint64(b, uint64(date))
	b = binary.LittleEndian.AppendUint64(b, uint64(dateLocal))
	b = binary.LittleEndian.AppendUint64(b, uint64(updated))
	h.buf = b
	if h.f == nil {
		h.f = fnv.New64a()
	}
	h.f.Reset()
	_, _ = h.f.Write(b)
	return fmix64(h.f.Sum64())
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// digestRows computes the day digests of rows of t, rows of month mon. ok is false when
// a row has a null id, account, date, local date or updated_at, or a local date outside
// mon: such a partition carries no digests.
func digestRows(c txCols, t *table, rows []rowRef, mon month) (d dayDigests, ok bool) {
	d = dayDigests{mon: mon, days: map[day]dayDigest{}}
	var h rowHasher
	first, last := mon.first(), mon.last()
	for _, row := range rows {
		for _, col := range []int{c.id, c.account, c.date, c.dateLocal, c.updatedAt} {
			if t.col(row, col).IsNull(int(row.row)) {
				return dayDigests{}, false
			}
		}
		dl := t.i64(row, c.dateLocal)
		if dl < int64(first) || dl > int64(last) {
			return dayDigests{}, false
		}
		dd := d.days[day(dl)]
		dd.rows++
		dd.sum += h.hash(t.str(row, c.id), t.str(row, c.account), t.i64(row, c.date), dl, t.i64(row, c.updatedAt))
		d.days[day(dl)] = dd
	}
	return d, true
}

// String encodes the digests as they are stored.
func (d dayDigests) String() string {
	days := make([]day, 0, len(d.days))
	for dd := range d.days {
		days = append(days, dd)
	}
	sort.Slice(days, func(i, j int) bool { return days[i] < days[j] })
	var sb strings.Builder
	sb.WriteString(digestsVersion + ";" + d.mon.String() + ";")
	for i, dd := range days {
		if i > 0 {
			sb.WriteByte(',')
		}
		v := d.days[dd]
		fmt.Fprintf(&sb, "%02d:%d:%016x", dd.civil().Day(), v.rows, v.sum)
	}
	return sb.String()
}

// parseDayDigests decodes stored digests. It accepts only the text String writes (one
// spelling per value), so that anything else, from a file it did not write or of
// another version, is not mistaken for digests.
func parseDayDigests(s string) (dayDigests, error) {
	parts := strings.Split(s, ";")
	if len(parts) != 3 || parts[0] != digestsVersion {
		return dayDigests{}, fmt.Errorf("day digests: not %s digests", digestsVersion)
	}
	mon, err := parseMonth(parts[1])
	if err != nil || mon.String() != parts[1] {
		return dayDigests{}, fmt.Errorf("day digests: month %q", parts[1])
	}
	d := dayDigests{mon: mon, days: map[day]dayDigest{}}
	if parts[2] == "" {
		return d, nil
	}
	prev := 0
	for _, e := range strings.Split(parts[2], ",") {
		f := strings.Split(e, ":")
		if len(f) != 3 || len(f[0]) != 2 || len(f[2]) != 16 {
			return dayDigests{}, fmt.Errorf("day digests: entry %q", e)
		}
		dom, err := strconv.Atoi(f[0])
		first := mon.first()
		if err != nil || f[0][0] == '+' || f[0][0] == '-' || dom <= prev || dom > int(mon.last()-first)+1 {
			return dayDigests{}, fmt.Errorf("day digests: day %q", f[0])
		}
		rows, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || rows <= 0 || strconv.FormatInt(rows, 10) != f[1] {
			return dayDigests{}, fmt.Errorf("day digests: row count %q", f[1])
		}
		sum, err := strconv.ParseUint(f[2], 16, 64)
		if err != nil || fmt.Sprintf("%016x", sum) != f[2] {
			return dayDigests{}, fmt.Errorf("day digests: sum %q", f[2])
		}
		d.days[first+day(dom-1)] = dayDigest{rows: rows, sum: sum}
		prev = dom
	}
	return d, nil
}
