package akahutest

import (
	"strconv"
	"time"
	"unicode/utf8"
)

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// appendCents renders integer cents as the shortest JSON number text, the way
// JavaScript prints the float: -1150 -> -11.5, 10 -> 0.1, 0 -> 0.
func appendCents(b []byte, c int64) []byte { return appendScaled(b, c, 2, false) }

// appendScaled renders v / 10^scale; with fixed all decimals are kept.
func appendScaled(b []byte, v int64, scale int, fixed bool) []byte {
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = uint64(-v)
	}
	p := uint64(1)
	for i := 0; i < scale; i++ {
		p *= 10
	}
	b = strconv.AppendUint(b, u/p, 10)
	frac := u % p
	if scale == 0 || (frac == 0 && !fixed) {
		return b
	}
	var digits [20]byte
	n := scale
	for i := scale - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	if !fixed {
		for n > 0 && digits[n-1] == '0' {
			n--
		}
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// centsText returns the decimal text appendCents renders.
func centsText(c int64) string { return string(appendCents(nil, c)) }

func appendTime(b []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
}

func appendQuotedTime(b []byte, ms int64) []byte {
	b = append(b, '"')
	b = appendTime(b, ms)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; non-ASCII stays raw UTF-8 as
// Node's JSON.stringify leaves it.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			i++
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendKey(b []byte, key string) []byte {
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendField(b []byte, key, val string) []byte {
	b = appendKey(b, key)
	return appendString(b, val)
}

// appendTxn renders a settled transaction exactly as served.
func (f *Fake) appendTxn(b []byte, t *txn) []byte {
	b = append(b, '{')
	b = appendField(b, "_id", t.id)
	b = append(b, ',')
	b = appendField(b, "_account", t.acc.id)
	b = append(b, ',')
	b = appendField(b, "_user", t.acc.user.id)
	b = append(b, ',')
	b = appendField(b, "_connection", t.acc.conn.id)
	b = append(b, ',')
	b = appendKey(b, "created_at")
	b = appendQuotedTime(b, t.createdMs)
	b = append(b, ',')
	b = appendKey(b, "updated_at")
	b = appendQuotedTime(b, t.updatedMs)
	b = append(b, ',')
	b = appendKey(b, "date")
	b = appendQuotedTime(b, t.dateMs)
	b = append(b, ',')
	b = appendField(b, "description", t.desc)
	b = append(b, ',')
	b = appendKey(b, "amount")
	b = appendCents(b, t.cents)
	if t.hasBalance {
		b = append(b, ',')
		b = appendKey(b, "balance")
		b = appendCents(b, t.balance)
	}
	b = append(b, ',')
	b = appendField(b, "type", t.typ)
	if t.hash != "" {
		b = append(b, ',')
		b = appendField(b, "hash", t.hash)
	}
	if t.merchant >= 0 {
		m := merchants[t.merchant]
		b = append(b, `,"merchant":{`...)
		b = appendField(b, "_id", m.id)
		b = append(b, ',')
		b = appendField(b, "name", m.name)
		if m.website != "" {
			b = append(b, ',')
			b = appendField(b, "website", m.website)
		}
		if m.businessNumber != "" {
			b = append(b, ',')
			b = appendField(b, "business_number", m.businessNumber)
		}
		b = append(b, '}')
	}
	if t.category >= 0 {
		c := categories[t.category]
		b = append(b, `,"category":{`...)
		b = appendField(b, "_id", c.id)
		b = append(b, ',')
		b = appendField(b, "name", c.name)
		b = append(b, `,"groups":{"personal_finance":{`...)
		b = appendField(b, "_id", c.groupID)
		b = append(b, ',')
		b = appendField(b, "name", c.groupName)
		b = append(b, `}},"components":[`...)
		for i, comp := range c.components {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = appendField(b, "name", comp)
			b = append(b, ',')
			b = appendField(b, "type", "nzfcc:component")
			b = append(b, '}')
		}
		b = append(b, ']', '}')
	}
	switch t.metaKind {
	case 1:
		b = append(b, `,"meta":{}`...)
	case 2:
		b = append(b, `,"meta":{`...)
		n := len(b)
		opt := func(key, val string) {
			if val == "" {
				return
			}
			if len(b) > n {
				b = append(b, ',')
			}
			b = appendField(b, key, val)
		}
		opt("particulars", t.particulars)
		opt("code", t.code)
		opt("reference", t.reference)
		opt("other_account", t.otherAccount)
		opt("card_suffix", t.cardSuffix)
		opt("logo", t.logo)
		if c := t.conv; c != nil {
			if len(b) > n {
				b = append(b, ',')
			}
			b = append(b, `"conversion":{"amount":`...)
			b = appendCents(b, c.cents)
			b = append(b, ',')
			b = appendField(b, "currency", c.currency)
			b = append(b, `,"rate":`...)
			b = appendScaled(b, c.rate, 6, false)
			if c.feeCents >= 0 {
				b = append(b, `,"fee":`...)
				b = appendCents(b, c.feeCents)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if t.migrated != "" {
		b = append(b, ',')
		b = appendField(b, "_migrated", t.migrated)
	}
	if t.xNew {
		b = append(b, `,"x_new_field":{"nested":[1,2.5,{"deep":null}],"flag":true}`...)
	}
	return append(b, '}')
}

// appendPending renders a pending transaction; it has no _id and its amount
// is a JSON string on some items.
func (f *Fake) appendPending(b []byte, acc *account, p *pendingTxn) []byte {
	b = append(b, '{')
	b = appendField(b, "_user", acc.user.id)
	b = append(b, ',')
	b = appendField(b, "_account", acc.id)
	b = append(b, ',')
	b = appendField(b, "_connection", acc.conn.id)
	b = append(b, ',')
	b = appendKey(b, "updated_at")
	b = appendQuotedTime(b, p.updatedMs)
	b = append(b, ',')
	b = appendKey(b, "date")
	b = appendQuotedTime(b, p.dateMs)
	b = append(b, ',')
	b = appendField(b, "description", p.desc)
	b = append(b, ',')
	b = appendKey(b, "amount")
	if p.amountString {
		b = append(b, '"')
		b = appendScaled(b, p.cents, 2, true)
		b = append(b, '"')
	} else {
		b = appendCents(b, p.cents)
	}
	b = append(b, ',')
	b = appendField(b, "type", p.typ)
	if p.meta {
		b = append(b, `,"meta":{"card_suffix":"4242"}`...)
	}
	return append(b, '}')
}

func (f *Fake) renderAccount(acc *account, creds, auth string) []byte {
	r := rng{s: mix(f.key, 0xacc0, uint64(acc.idx))}
	b := make([]byte, 0, 1024)
	b = append(b, '{')
	b = appendField(b, "_id", acc.id)
	b = append(b, ',')
	b = appendField(b, "_authorisation", auth)
	b = append(b, ',')
	b = appendField(b, "_credentials", creds)
	b = append(b, `,"connection":{`...)
	b = appendField(b, "_id", acc.conn.id)
	b = append(b, ',')
	b = appendField(b, "name", acc.conn.name)
	b = append(b, ',')
	b = appendField(b, "logo", acc.conn.logo)
	b = append(b, "},"...)
	b = appendField(b, "name", acc.name)
	b = append(b, ',')
	b = appendField(b, "status", acc.status)
	if acc.typ != "KIWISAVER" && acc.typ != "INVESTMENT" {
		b = append(b, ',')
		var num string
		if acc.typ == "CREDITCARD" {
			num = "4111-****-****-" + pad(r.intn(10000), 4)
		} else {
			num = acc.conn.prefix + "-" + pad(r.intn(10000), 4) + "-" + pad(r.intn(10000000), 7) + "-" + pad(r.intn(100), 2)
		}
		b = appendField(b, "formatted_account", num)
	}
	b = append(b, ',')
	b = appendField(b, "type", acc.typ)
	b = append(b, `,"attributes":[`...)
	if acc.hasTx {
		b = append(b, `"TRANSACTIONS","TRANSFER_TO","TRANSFER_FROM","PAYMENT_TO","PAYMENT_FROM"`...)
	} else {
		b = append(b, `"PAYMENT_TO"`...)
	}
	b = append(b, `],"balance":{`...)
	b = appendField(b, "currency", acc.currency)
	cur := acc.opening
	if acc.hasBalance {
		cur += acc.sumAll
	} else {
		cur = int64(r.intn(100000000)) - 1000000
	}
	if acc.typ == "LOAN" {
		cur = -int64(r.intn(80000000)) - 10000000
	}
	b = append(b, `,"current":`...)
	b = appendCents(b, cur)
	if acc.typ != "KIWISAVER" && acc.typ != "LOAN" {
		b = append(b, `,"available":`...)
		b = appendCents(b, cur+200000)
	}
	if acc.typ == "CREDITCARD" {
		b = append(b, `,"limit":1000000`...)
	}
	if acc.typ != "KIWISAVER" {
		b = append(b, `,"overdrawn":`...)
		b = strconv.AppendBool(b, cur < 0 && acc.typ != "LOAN")
	}
	refreshed := f.opts.To.UnixMilli() + 9*3600000 + int64(r.intn(3600000))
	if acc.status == "INACTIVE" {
		refreshed -= 40 * 86400000
	}
	b = append(b, `},"refreshed":{"balance":`...)
	acc.refresh.stamps = append(acc.refresh.stamps, len(b))
	b = appendQuotedTime(b, refreshed)
	b = append(b, `,"meta":`...)
	acc.refresh.stamps = append(acc.refresh.stamps, len(b))
	b = appendQuotedTime(b, refreshed-60000)
	acc.refresh.txStamp = refreshed
	if acc.hasTx {
		b = append(b, `,"transactions":`...)
		acc.refresh.stamps = append(acc.refresh.stamps, len(b))
		acc.refresh.txStamp = refreshed - 30000
		b = appendQuotedTime(b, refreshed-30000)
	}
	b = append(b, `,"party":`...)
	b = appendQuotedTime(b, refreshed-20*86400000)
	b = append(b, `},"meta":{`...)
	b = appendField(b, "holder", holders[acc.user.idx%len(holders)])
	switch acc.typ {
	case "LOAN":
		b = append(b, `,"loan_details":{"purpose":"HOME","type":"TABLE","interest":{"rate":6.29,"type":"FIXED","expires_at":"2027-03-01T00:00:00.000Z"},"is_interest_only":false,"initial_principal":650000,"repayment":{"frequency":"MONTHLY","next_date":"2026-12-01T00:00:00.000Z","next_amount":3987.12}}`...)
	case "KIWISAVER":
		b = append(b, `,"payment_details":{"account_holder":"Simplicity NZ Ltd","account_number":"12-3140-0123456-00","reference":"KS"}`...)
	default:
		b = append(b, `,"address":"10B Imaginary Lane, Auckland, New Zealand"`...)
	}
	return append(b, '}', '}')
}
