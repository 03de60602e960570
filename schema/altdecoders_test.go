package schema

// Alternative decoders used only by the benchmarks (and an equivalence test)
// to justify the choice of jsontext token streaming in reader.decodeTx. Each
// fills the same txRow and extraTree, so the append path is shared.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// ---- encoding/json: a struct of json.RawMessage / json.Number fields, plus a
// map pass per object to find the members the struct does not name.

type stdTx struct {
	ID          *string         `json:"_id"`
	User        *string         `json:"_user"`
	Account     *string         `json:"_account"`
	Connection  *string         `json:"_connection"`
	Date        *string         `json:"date"`
	CreatedAt   *string         `json:"created_at"`
	UpdatedAt   *string         `json:"updated_at"`
	Description *string         `json:"description"`
	Amount      json.Number     `json:"amount"`
	Balance     json.Number     `json:"balance"`
	Type        *string         `json:"type"`
	Merchant    json.RawMessage `json:"merchant"`
	Category    json.RawMessage `json:"category"`
	Meta        json.RawMessage `json:"meta"`
}

type stdNamed struct {
	ID      *string `json:"_id"`
	Name    *string `json:"name"`
	Website *string `json:"website"`
}

type stdCategory struct {
	stdNamed
	Groups map[string]json.RawMessage `json:"groups"`
}

type stdMeta struct {
	Particulars  *string         `json:"particulars"`
	Code         *string         `json:"code"`
	Reference    *string         `json:"reference"`
	OtherAccount *string         `json:"other_account"`
	CardSuffix   *string         `json:"card_suffix"`
	Conversion   json.RawMessage `json:"conversion"`
}

type stdConversion struct {
	Amount   json.Number `json:"amount"`
	Currency *string     `json:"currency"`
	Rate     json.Number `json:"rate"`
	Fee      json.Number `json:"fee"`
}

type stdDecoder struct {
	extra extraTree
	names map[string]json.RawMessage
}

func sOpt(s *string) optStr {
	if s == nil {
		return optStr{}
	}
	return optStr{b: []byte(*s), ok: true}
}

func (d *stdDecoder) unknowns(raw []byte, known map[string]bool, ref *xref) error {
	clear(d.names)
	if err := json.Unmarshal(raw, &d.names); err != nil {
		return err
	}
	for k, v := range d.names {
		if !known[k] {
			q, _ := json.Marshal(k)
			d.extra.add(ref, []byte(k), q, v)
		}
	}
	return nil
}

var (
	stdTopKnown  = map[string]bool{"_id": true, "_user": true, "_account": true, "_connection": true, "date": true, "created_at": true, "updated_at": true, "description": true, "amount": true, "balance": true, "type": true, "merchant": true, "category": true, "meta": true}
	stdMerKnown  = map[string]bool{"_id": true, "name": true, "website": true}
	stdCatKnown  = map[string]bool{"_id": true, "name": true, "groups": true}
	stdPFKnown   = map[string]bool{"_id": true, "name": true}
	stdMetaKnown = map[string]bool{"particulars": true, "code": true, "reference": true, "other_account": true, "card_suffix": true, "conversion": true}
	stdConvKnown = map[string]bool{"amount": true, "currency": true, "rate": true, "fee": true}
)

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

func numOpt(n json.Number, scale int32, precision int32) (optNum, error) {
	if n == "" {
		return optNum{}, nil
	}
	v, err := parseScaled(string(n), precision, scale)
	return optNum{v: v, ok: err == nil}, err
}

func tsOpt(s *string) (optNum, error) {
	if s == nil {
		return optNum{}, nil
	}
	v, err := parseTimestamp(*s)
	return optNum{v: v, ok: err == nil}, err
}

func (d *stdDecoder) decode(item []byte, row *txRow) error {
	*row = txRow{}
	d.extra.reset()
	if d.names == nil {
		d.names = map[string]json.RawMessage{}
	}
	if !utf8.Valid(item) {
		return fmt.Errorf("invalid UTF-8: %w", ErrInvalid)
	}
	var tx stdTx
	if err := json.Unmarshal(item, &tx); err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	if err := d.unknowns(item, stdTopKnown, nil); err != nil {
		return err
	}
	row.id, row.user, row.account, row.connection = sOpt(tx.ID), sOpt(tx.User), sOpt(tx.Account), sOpt(tx.Connection)
	row.description, row.typ = sOpt(tx.Description), sOpt(tx.Type)
	var err error
	if row.date, err = tsOpt(tx.Date); err != nil {
		return err
	}
	if row.createdAt, err = tsOpt(tx.CreatedAt); err != nil {
		return err
	}
	if row.updatedAt, err = tsOpt(tx.UpdatedAt); err != nil {
		return err
	}
	if row.amount, err = numOpt(tx.Amount, Money.Scale, Money.Precision); err != nil {
		return err
	}
	if row.balance, err = numOpt(tx.Balance, Money.Scale, Money.Precision); err != nil {
		return err
	}
	merchant := newRef(nil, qMerchant)
	category := newRef(nil, qCategory)
	groups := newRef(&category, qGroups)
	pf := newRef(&groups, qPersonalFinance)
	meta := newRef(nil, qMeta)
	conv := newRef(&meta, qConversion)
	if !isNull(tx.Merchant) {
		var m stdNamed
		if err := json.Unmarshal(tx.Merchant, &m); err != nil {
			return err
		}
		row.merchantID, row.merchantName, row.merchantWebsite = sOpt(m.ID), sOpt(m.Name), sOpt(m.Website)
		if err := d.unknowns(tx.Merchant, stdMerKnown, &merchant); err != nil {
			return err
		}
	}
	if !isNull(tx.Category) {
		var c stdCategory
		if err := json.Unmarshal(tx.Category, &c); err != nil {
			return err
		}
		row.categoryID, row.categoryName = sOpt(c.ID), sOpt(c.Name)
		if err := d.unknowns(tx.Category, stdCatKnown, &category); err != nil {
			return err
		}
		for k, v := range c.Groups {
			if k != "personal_finance" {
				q, _ := json.Marshal(k)
				d.extra.add(&groups, []byte(k), q, v)
				continue
			}
			var g stdNamed
			if err := json.Unmarshal(v, &g); err != nil {
				return err
			}
			row.groupID, row.groupName = sOpt(g.ID), sOpt(g.Name)
			if err := d.unknowns(v, stdPFKnown, &pf); err != nil {
				return err
			}
		}
	}
	if !isNull(tx.Meta) {
		var m stdMeta
		if err := json.Unmarshal(tx.Meta, &m); err != nil {
			return err
		}
		row.particulars, row.code, row.reference, row.otherAcc, row.cardSfx = sOpt(m.Particulars), sOpt(m.Code), sOpt(m.Reference), sOpt(m.OtherAccount), sOpt(m.CardSuffix)
		if err := d.unknowns(tx.Meta, stdMetaKnown, &meta); err != nil {
			return err
		}
		if !isNull(m.Conversion) {
			var c stdConversion
			if err := json.Unmarshal(m.Conversion, &c); err != nil {
				return err
			}
			row.convCurrency = sOpt(c.Currency)
			if row.convAmount, err = numOpt(c.Amount, Money.Scale, Money.Precision); err != nil {
				return err
			}
			if row.convRate, err = numOpt(c.Rate, Rate.Scale, Rate.Precision); err != nil {
				return err
			}
			if row.convFee, err = numOpt(c.Fee, Money.Scale, Money.Precision); err != nil {
				return err
			}
			if err := d.unknowns(m.Conversion, stdConvKnown, &conv); err != nil {
				return err
			}
		}
	}
	if !row.id.ok || !row.user.ok || !row.account.ok || !row.date.ok || !row.amount.ok {
		return fmt.Errorf("required field: %w", errMissing)
	}
	row.extra = d.extra.render()
	return nil
}

// ---- json v2 (go-json-experiment/json) Unmarshal into structs whose
// `,embed` jsontext.Value fields capture unnamed members in one pass.

type v2Named struct {
	ID      *string        `json:"_id"`
	Name    *string        `json:"name"`
	Website *string        `json:"website"`
	Unknown jsontext.Value `json:",embed"`
}

type v2Conversion struct {
	Amount   jsontext.Value `json:"amount"`
	Currency *string        `json:"currency"`
	Rate     jsontext.Value `json:"rate"`
	Fee      jsontext.Value `json:"fee"`
	Unknown  jsontext.Value `json:",embed"`
}

type v2Tx struct {
	ID          *string        `json:"_id"`
	User        *string        `json:"_user"`
	Account     *string        `json:"_account"`
	Connection  *string        `json:"_connection"`
	Date        *string        `json:"date"`
	CreatedAt   *string        `json:"created_at"`
	UpdatedAt   *string        `json:"updated_at"`
	Description *string        `json:"description"`
	Amount      jsontext.Value `json:"amount"`
	Balance     jsontext.Value `json:"balance"`
	Type        *string        `json:"type"`
	Merchant    *v2Named       `json:"merchant"`
	Category    *struct {
		ID     *string `json:"_id"`
		Name   *string `json:"name"`
		Groups *struct {
			PersonalFinance *v2Named       `json:"personal_finance"`
			Unknown         jsontext.Value `json:",embed"`
		} `json:"groups"`
		Unknown jsontext.Value `json:",embed"`
	} `json:"category"`
	Meta *struct {
		Particulars  *string        `json:"particulars"`
		Code         *string        `json:"code"`
		Reference    *string        `json:"reference"`
		OtherAccount *string        `json:"other_account"`
		CardSuffix   *string        `json:"card_suffix"`
		Conversion   *v2Conversion  `json:"conversion"`
		Unknown      jsontext.Value `json:",embed"`
	} `json:"meta"`
	Unknown jsontext.Value `json:",embed"`
}

type v2Decoder struct {
	extra extraTree
	dec   jsontext.Decoder
	buf   bytes.Buffer
}

func rawNum(v jsontext.Value, precision, scale int32) (optNum, error) {
	if len(v) == 0 || v[0] == 'n' {
		return optNum{}, nil
	}
	if v[0] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := parseScaled(v, precision, scale)
	return optNum{v: n, ok: err == nil}, err
}

// split adds the members of an unknown-capture object to extra.
func (d *v2Decoder) split(obj jsontext.Value, ref *xref) error {
	if len(obj) == 0 {
		return nil
	}
	d.buf.Reset()
	d.buf.Write(obj)
	d.dec.Reset(&d.buf)
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() != '}' {
		name, err := d.dec.ReadValue()
		if err != nil {
			return err
		}
		name = name.Clone()
		val, err := d.dec.ReadValue()
		if err != nil {
			return err
		}
		var s string
		if err := jsonv2.Unmarshal(name, &s); err != nil {
			return err
		}
		d.extra.add(ref, []byte(s), name, val.Clone())
	}
	return nil
}

func (d *v2Decoder) decode(item []byte, row *txRow) error {
	*row = txRow{}
	d.extra.reset()
	var tx v2Tx
	if err := jsonv2.Unmarshal(item, &tx); err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	row.id, row.user, row.account, row.connection = sOpt(tx.ID), sOpt(tx.User), sOpt(tx.Account), sOpt(tx.Connection)
	row.description, row.typ = sOpt(tx.Description), sOpt(tx.Type)
	var err error
	if row.date, err = tsOpt(tx.Date); err != nil {
		return err
	}
	if row.createdAt, err = tsOpt(tx.CreatedAt); err != nil {
		return err
	}
	if row.updatedAt, err = tsOpt(tx.UpdatedAt); err != nil {
		return err
	}
	if row.amount, err = rawNum(tx.Amount, Money.Precision, Money.Scale); err != nil {
		return err
	}
	if row.balance, err = rawNum(tx.Balance, Money.Precision, Money.Scale); err != nil {
		return err
	}
	if err := d.split(tx.Unknown, nil); err != nil {
		return err
	}
	merchant := newRef(nil, qMerchant)
	category := newRef(nil, qCategory)
	groups := newRef(&category, qGroups)
	pf := newRef(&groups, qPersonalFinance)
	meta := newRef(nil, qMeta)
	conv := newRef(&meta, qConversion)
	if m := tx.Merchant; m != nil {
		row.merchantID, row.merchantName, row.merchantWebsite = sOpt(m.ID), sOpt(m.Name), sOpt(m.Website)
		if err := d.split(m.Unknown, &merchant); err != nil {
			return err
		}
	}
	if c := tx.Category; c != nil {
		row.categoryID, row.categoryName = sOpt(c.ID), sOpt(c.Name)
		if err := d.split(c.Unknown, &category); err != nil {
			return err
		}
		if g := c.Groups; g != nil {
			if err := d.split(g.Unknown, &groups); err != nil {
				return err
			}
			if p := g.PersonalFinance; p != nil {
				row.groupID, row.groupName = sOpt(p.ID), sOpt(p.Name)
				if err := d.split(p.Unknown, &pf); err != nil {
					return err
				}
			}
		}
	}
	if m := tx.Meta; m != nil {
		row.particulars, row.code, row.reference, row.otherAcc, row.cardSfx = sOpt(m.Particulars), sOpt(m.Code), sOpt(m.Reference), sOpt(m.OtherAccount), sOpt(m.CardSuffix)
		if err := d.split(m.Unknown, &meta); err != nil {
			return err
		}
		if c := m.Conversion; c != nil {
			row.convCurrency = sOpt(c.Currency)
			if row.convAmount, err = rawNum(c.Amount, Money.Precision, Money.Scale); err != nil {
				return err
			}
			if row.convRate, err = rawNum(c.Rate, Rate.Precision, Rate.Scale); err != nil {
				return err
			}
			if row.convFee, err = rawNum(c.Fee, Money.Precision, Money.Scale); err != nil {
				return err
			}
			if err := d.split(c.Unknown, &conv); err != nil {
				return err
			}
		}
	}
	if !row.id.ok || !row.user.ok || !row.account.ok || !row.date.ok || !row.amount.ok {
		return fmt.Errorf("required field: %w", errMissing)
	}
	row.extra = d.extra.render()
	return nil
}
