package akahutest

import (
	"strings"
	"time"
)

// rng is splitmix64: tiny, fast and good enough for synthetic data.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *rng) chance(p float64) bool { return r.float() < p }

// mix hashes a sequence of values into one 64-bit seed.
func mix(vs ...uint64) uint64 {
	r := rng{s: 0x243f6a8885a308d3}
	h := r.next()
	for _, v := range vs {
		r.s = h ^ (v * 0x9e3779b97f4a7c15)
		h = r.next()
	}
	return h
}

func mixString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

const alnum = "0123456789abcdefghijklmnopqrstuvwxyz"

// randID returns prefix followed by n lowercase alphanumerics derived from h.
func randID(prefix string, n int, h uint64) string {
	var b strings.Builder
	b.Grow(len(prefix) + n)
	b.WriteString(prefix)
	r := rng{s: h}
	for i := 0; i < n; i++ {
		b.WriteByte(alnum[r.intn(36)])
	}
	return b.String()
}

// Settled transaction ids of the generated history encode their position
// (account, local day, index within the day) so that no per-transaction state
// is stored: "trans_" + 12 check characters + 13 base-36 characters of a keyed
// bijective scramble of the position.
const (
	idPrefix   = "trans_"
	idLen      = len(idPrefix) + 25
	idTag      = 0x5a
	maxAccount = 1 << 20
	maxDay     = 1 << 20
	maxPerDay  = 1 << 16
)

type position struct {
	acct int // global account index
	day  int // local days since 1970-01-01
	k    int // index within the day
}

// Multiplicative inverses modulo 2^64 of the scramble constants.
const (
	scrambleM1 = 0xff51afd7ed558ccd
	scrambleM2 = 0xc4ceb9fe1a85ec53
)

var scrambleI1, scrambleI2 = modInverse(scrambleM1), modInverse(scrambleM2)

func modInverse(a uint64) uint64 {
	x := a // Newton iteration: correct bits double each step
	for i := 0; i < 6; i++ {
		x *= 2 - a*x
	}
	return x
}

func scramble(x, key uint64) uint64 {
	x ^= key
	x *= scrambleM1
	x ^= x >> 33
	x *= scrambleM2
	x ^= x >> 29
	return x
}

func unxorshift(x uint64, s uint) uint64 {
	y := x
	for i := uint(0); i < 64/s+1; i++ {
		y = x ^ (y >> s)
	}
	return y
}

func unscramble(x, key uint64) uint64 {
	x = unxorshift(x, 29)
	x *= scrambleI2
	x = unxorshift(x, 33)
	x *= scrambleI1
	return x ^ key
}

func appendBase36(b []byte, v uint64, width int) []byte {
	var buf [16]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = alnum[v%36]
		v /= 36
	}
	return append(b, buf[:width]...)
}

func parseBase36(s string) (uint64, bool) {
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'z':
			d = uint64(c-'a') + 10
		default:
			return 0, false
		}
		hi := v * 36
		if hi/36 != v || hi+d < hi {
			return 0, false
		}
		v = hi + d
	}
	return v, true
}

const check36 = 4738381338321616896 // 36^12

func (f *Fake) baseID(p position) string {
	payload := uint64(p.acct)<<44 | uint64(p.day)<<24 | uint64(p.k)<<8 | idTag
	b := make([]byte, 0, idLen)
	b = append(b, idPrefix...)
	b = appendBase36(b, mix(f.key, payload)%check36, 12)
	b = appendBase36(b, scramble(payload, f.key), 13)
	return string(b)
}

// decodeBaseID inverts baseID; ok is false for anything baseID cannot return.
func (f *Fake) decodeBaseID(id string) (position, bool) {
	if len(id) != idLen || !strings.HasPrefix(id, idPrefix) {
		return position{}, false
	}
	x, ok := parseBase36(id[len(idPrefix)+12:])
	if !ok {
		return position{}, false
	}
	payload := unscramble(x, f.key)
	if payload&0xff != idTag {
		return position{}, false
	}
	var chk []byte
	chk = appendBase36(chk, mix(f.key, payload)%check36, 12)
	if string(chk) != id[len(idPrefix):len(idPrefix)+12] {
		return position{}, false
	}
	return position{
		acct: int(payload >> 44),
		day:  int(payload >> 24 & (maxDay - 1)),
		k:    int(payload >> 8 & (maxPerDay - 1)),
	}, true
}

// dayOf returns the Pacific/Auckland local date of an instant in ms as days
// since 1970-01-01.
func dayOf(ms int64) int {
	y, m, d := time.UnixMilli(ms).In(auckland).Date()
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// midnight returns local midnight of day d in Pacific/Auckland, in UTC ms.
func (f *Fake) midnight(d int) int64 {
	if i := d - f.midLo; i >= 0 && i < len(f.mid) {
		return f.mid[i]
	}
	return computeMidnight(d)
}

func computeMidnight(d int) int64 {
	y, m, dd := time.Unix(int64(d)*86400, 0).UTC().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, auckland).UnixMilli()
}
