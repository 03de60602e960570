package schema

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// txRow is the reusable intermediate of one settled or pending transaction.
// Byte slices point into the reader's buffers and die with the next item.
type txRow struct {
	id, user, account, connection                   optStr
	date, createdAt, updatedAt                      optNum
	description, typ                                optStr
	amount, balance                                 optNum
	merchantID, merchantName, merchantWebsite       optStr
	categoryID, categoryName, groupID, groupName    optStr
	particulars, code, reference, otherAcc, cardSfx optStr
	convAmount, convRate, convFee                   optNum
	convCurrency                                    optStr
	extra                                           []byte // nil: null
}

// decodeTx decodes item into row. pending selects the pending-transaction
// field set (no id, no enrichment; everything else goes to extra). The
// returned error wraps ErrInvalid or ErrOverflow and names the field and the
// _id (or the account for pending items) where known.
func (r *reader) decodeTx(item []byte, row *txRow, pending bool) error {
	*row = txRow{}
	r.reset(item)
	if err := r.decodeTxObject(row, pending); err != nil {
		return txError(row, pending, "", err)
	}
	if err := r.finish(); err != nil {
		return txError(row, pending, "", err)
	}
	if r.ferr.err != nil {
		return txError(row, pending, r.ferr.field, r.ferr.err)
	}
	required := [...]struct {
		name string
		ok   bool
		skip bool
	}{
		{"_id", row.id.ok, pending},
		{"_user", row.user.ok, false},
		{"_account", row.account.ok, false},
		{"date", row.date.ok, false},
		{"amount", row.amount.ok, false},
	}
	for _, f := range required {
		if !f.skip && !f.ok {
			return txError(row, pending, f.name, fmt.Errorf("%w: %w", errMissing, ErrInvalid))
		}
	}
	row.extra = r.extra.render()
	return nil
}

func txError(row *txRow, pending bool, field string, err error) error {
	var what string
	switch {
	case pending && row.account.ok:
		what = fmt.Sprintf("pending transaction on account %q", row.account.b)
	case pending:
		what = "pending transaction"
	case row.id.ok:
		what = fmt.Sprintf("transaction %q", row.id.b)
	default:
		what = "transaction (no _id)"
	}
	if field == "" {
		return fmt.Errorf("schema: %s: %w", what, err)
	}
	return fmt.Errorf("schema: %s: field %q: %w", what, field, err)
}

func (r *reader) decodeTxObject(row *txRow, pending bool) error {
	if err := r.openRoot(); err != nil {
		return err
	}
	x := &r.refs
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		switch string(name) {
		case "_user":
			err = r.str("_user", &row.user)
		case "_account":
			err = r.str("_account", &row.account)
		case "_connection":
			err = r.str("_connection", &row.connection)
		case "date":
			err = r.timestamp("date", &row.date)
		case "updated_at":
			err = r.timestamp("updated_at", &row.updatedAt)
		case "description":
			err = r.str("description", &row.description)
		case "amount":
			err = r.decimal("amount", Money.Precision, Money.Scale, &row.amount)
		case "type":
			err = r.str("type", &row.typ)
		case "meta":
			err = r.decodeMeta(row, &x.meta, &x.conv, pending)
		default:
			if pending {
				err = r.unknown(nil, name, raw)
				break
			}
			switch string(name) {
			case "_id":
				err = r.str("_id", &row.id)
			case "created_at":
				err = r.timestamp("created_at", &row.createdAt)
			case "balance":
				err = r.decimal("balance", Money.Precision, Money.Scale, &row.balance)
			case "merchant":
				err = r.decodeMerchant(row, &x.merchant)
			case "category":
				err = r.decodeCategory(row, &x.category, &x.groups, &x.pf)
			default:
				err = r.unknown(nil, name, raw)
			}
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodeMerchant(row *txRow, ref *xref) error {
	ok, err := r.openObject("merchant")
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		switch string(name) {
		case "_id":
			err = r.str("merchant._id", &row.merchantID)
		case "name":
			err = r.str("merchant.name", &row.merchantName)
		case "website":
			err = r.str("merchant.website", &row.merchantWebsite)
		default:
			err = r.unknown(ref, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodeCategory(row *txRow, cat, groups, pf *xref) error {
	ok, err := r.openObject("category")
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		switch string(name) {
		case "_id":
			err = r.str("category._id", &row.categoryID)
		case "name":
			err = r.str("category.name", &row.categoryName)
		case "groups":
			err = r.decodeGroups(row, groups, pf)
		default:
			err = r.unknown(cat, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodeGroups(row *txRow, groups, pf *xref) error {
	ok, err := r.openObject("category.groups")
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		if string(name) == "personal_finance" {
			err = r.decodePersonalFinance(row, pf)
		} else {
			err = r.unknown(groups, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodePersonalFinance(row *txRow, pf *xref) error {
	ok, err := r.openObject("category.groups.personal_finance")
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		switch string(name) {
		case "_id":
			err = r.str("category.groups.personal_finance._id", &row.groupID)
		case "name":
			err = r.str("category.groups.personal_finance.name", &row.groupName)
		default:
			err = r.unknown(pf, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodeMeta(row *txRow, meta, conv *xref, pending bool) error {
	ok, err := r.openObject("meta")
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		switch string(name) {
		case "particulars":
			err = r.str("meta.particulars", &row.particulars)
		case "code":
			err = r.str("meta.code", &row.code)
		case "reference":
			err = r.str("meta.reference", &row.reference)
		case "other_account":
			err = r.str("meta.other_account", &row.otherAcc)
		case "card_suffix":
			err = r.str("meta.card_suffix", &row.cardSfx)
		case "conversion":
			if pending {
				err = r.unknown(meta, name, raw)
			} else {
				err = r.decodeConversion(row, conv)
			}
		default:
			err = r.unknown(meta, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodeConversion(row *txRow, conv *xref) error {
	ok, err := r.openObject("meta.conversion")
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		switch string(name) {
		case "amount":
			err = r.decimal("meta.conversion.amount", Money.Precision, Money.Scale, &row.convAmount)
		case "currency":
			err = r.str("meta.conversion.currency", &row.convCurrency)
		case "rate":
			err = r.decimal("meta.conversion.rate", Rate.Precision, Rate.Scale, &row.convRate)
		case "fee":
			err = r.decimal("meta.conversion.fee", Money.Precision, Money.Scale, &row.convFee)
		default:
			err = r.unknown(conv, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

// columns holds typed views of a RecordBuilder's fields and keeps the size of
// the last batch so the next one starts with that capacity.
type columns struct {
	rb       *array.RecordBuilder
	strs     []*array.StringBuilder
	strIdx   []int
	prevRows int
	prevData []int
}

func newColumns(mem memory.Allocator, sch *arrow.Schema) columns {
	c := columns{rb: array.NewRecordBuilder(mem, sch)}
	for i, f := range c.rb.Fields() {
		if sb, ok := f.(*array.StringBuilder); ok {
			c.strs = append(c.strs, sb)
			c.strIdx = append(c.strIdx, i)
		}
	}
	c.prevData = make([]int, len(c.strs))
	return c
}

func (c *columns) len() int { return c.rb.Field(0).Len() }

// newRecord returns the rows so far and re-reserves the last batch's size.
func (c *columns) newRecord() arrow.Record {
	rows := c.len()
	for i, sb := range c.strs {
		c.prevData[i] = sb.DataLen()
	}
	rec := c.rb.NewRecord()
	if rows > 0 {
		c.prevRows = rows
		c.rb.Reserve(rows)
		for i, sb := range c.strs {
			sb.ReserveData(c.prevData[i])
		}
	}
	return rec
}

func (c *columns) release() { c.rb.Release() }

func appendStr(b *array.StringBuilder, s optStr) {
	if s.ok {
		b.BinaryBuilder.Append(s.b)
	} else {
		b.AppendNull()
	}
}

// appendReq appends a required string; absent means "".
func appendReq(b *array.StringBuilder, s optStr) {
	b.BinaryBuilder.Append(s.b)
}

func appendDec(b *array.Decimal128Builder, n optNum) {
	if n.ok {
		b.Append(decimal128.FromI64(n.v))
	} else {
		b.AppendNull()
	}
}

func appendTS(b *array.TimestampBuilder, n optNum) {
	if n.ok {
		b.Append(arrow.Timestamp(n.v))
	} else {
		b.AppendNull()
	}
}

func appendBytesOrNull(b *array.StringBuilder, v []byte) {
	if v == nil {
		b.AppendNull()
	} else {
		b.BinaryBuilder.Append(v)
	}
}

// TransactionBuilder turns Akahu settled-transaction objects into records of
// Transactions(). It is not safe for concurrent use.
type TransactionBuilder struct {
	opts      Options
	loc       *time.Location
	cols      columns
	r         reader
	row       txRow
	runID     []byte
	extracted int64
	accounts  map[string]string // AppendOf's account ids, so that each is allocated once

	id, user, account, connection, description, currency, typ *array.StringBuilder
	merchantID, merchantName, merchantWebsite                 *array.StringBuilder
	categoryID, categoryName, groupID, groupName              *array.StringBuilder
	particulars, code, reference, otherAcc, cardSfx           *array.StringBuilder
	convCurrency, extra, run                                  *array.StringBuilder
	date, createdAt, updatedAt, extractedAt                   *array.TimestampBuilder
	dateLocal                                                 *array.Date32Builder
	amount, balance, convAmount, convRate, convFee            *array.Decimal128Builder
}

// NewTransactionBuilder returns a builder of Transactions() records.
func NewTransactionBuilder(mem memory.Allocator, opts Options) *TransactionBuilder {
	b := &TransactionBuilder{opts: opts, loc: opts.location(), cols: newColumns(mem, Transactions())}
	b.runID = []byte(opts.RunID)
	b.extracted = opts.ExtractedAt.UnixMicro()
	f := b.cols.rb.Field
	s := func(i int) *array.StringBuilder { return f(i).(*array.StringBuilder) }
	t := func(i int) *array.TimestampBuilder { return f(i).(*array.TimestampBuilder) }
	d := func(i int) *array.Decimal128Builder { return f(i).(*array.Decimal128Builder) }
	b.id, b.user, b.account, b.connection = s(txID), s(txUserID), s(txAccountID), s(txConnectionID)
	b.date, b.dateLocal, b.createdAt, b.updatedAt = t(txDate), f(txDateLocal).(*array.Date32Builder), t(txCreatedAt), t(txUpdatedAt)
	b.description, b.amount, b.balance, b.currency, b.typ = s(txDescription), d(txAmount), d(txBalance), s(txCurrency), s(txType)
	b.merchantID, b.merchantName, b.merchantWebsite = s(txMerchantID), s(txMerchantName), s(txMerchantWebsite)
	b.categoryID, b.categoryName, b.groupID, b.groupName = s(txCategoryID), s(txCategoryName), s(txCategoryGroupID), s(txCategoryGroupName)
	b.particulars, b.code, b.reference, b.otherAcc, b.cardSfx = s(txParticulars), s(txCode), s(txReference), s(txOtherAccount), s(txCardSuffix)
	b.convAmount, b.convCurrency, b.convRate, b.convFee = d(txConversionAmount), s(txConversionCurrency), d(txConversionRate), d(txConversionFee)
	b.extra, b.run, b.extractedAt = s(txExtra), s(txRunID), t(txExtractedAt)
	return b
}

// Append decodes one Akahu settled-transaction JSON object and appends it as
// one row; currency is the account's currency. On error nothing is appended;
// the error wraps ErrInvalid or ErrOverflow and names the field and the _id.
func (b *TransactionBuilder) Append(item []byte, currency string) error {
	if err := b.r.decodeTx(item, &b.row, false); err != nil {
		return err
	}
	if currency == "" {
		return txError(&b.row, false, "currency", fmt.Errorf("%w: %w", errMissing, ErrInvalid))
	}
	b.appendRow(&b.row, currency)
	return nil
}

// AppendOf is Append for an item of a walk over several accounts (Akahu's
// all-accounts endpoint): after decoding, account is called with the item's
// _account and returns that account's currency, or ok false for an account
// the caller does not extract, in which case nothing is appended and AppendOf
// returns false. Errors are Append's.
func (b *TransactionBuilder) AppendOf(item []byte, account func(id string) (currency string, ok bool)) (bool, error) {
	if err := b.r.decodeTx(item, &b.row, false); err != nil {
		return false, err
	}
	currency, ok := account(b.accountID(b.row.account.b))
	if !ok {
		return false, nil
	}
	if currency == "" {
		return false, txError(&b.row, false, "currency", fmt.Errorf("%w: %w", errMissing, ErrInvalid))
	}
	b.appendRow(&b.row, currency)
	return true, nil
}

// maxAccountIDs bounds the builder's account ids; a walk serves a user's
// few accounts, so the bound is only reached by a builder shared across
// many users, which then starts over.
const maxAccountIDs = 1024

// accountID returns id as a string, allocating it only the first time.
func (b *TransactionBuilder) accountID(id []byte) string {
	if s, ok := b.accounts[string(id)]; ok { // the lookup does not allocate
		return s
	}
	if b.accounts == nil || len(b.accounts) >= maxAccountIDs {
		b.accounts = make(map[string]string)
	}
	s := string(id)
	b.accounts[s] = s
	return s
}

func (b *TransactionBuilder) appendRow(row *txRow, currency string) {
	b.id.BinaryBuilder.Append(row.id.b)
	b.user.BinaryBuilder.Append(row.user.b)
	b.account.BinaryBuilder.Append(row.account.b)
	appendStr(b.connection, row.connection)
	b.date.Append(arrow.Timestamp(row.date.v))
	b.dateLocal.Append(arrow.Date32(localDate(row.date.v, b.loc)))
	appendTS(b.createdAt, row.createdAt)
	appendTS(b.updatedAt, row.updatedAt)
	appendReq(b.description, row.description)
	b.amount.Append(decimal128.FromI64(row.amount.v))
	appendDec(b.balance, row.balance)
	b.currency.Append(currency)
	appendReq(b.typ, row.typ)
	appendStr(b.merchantID, row.merchantID)
	appendStr(b.merchantName, row.merchantName)
	appendStr(b.merchantWebsite, row.merchantWebsite)
	appendStr(b.categoryID, row.categoryID)
	appendStr(b.categoryName, row.categoryName)
	appendStr(b.groupID, row.groupID)
	appendStr(b.groupName, row.groupName)
	appendStr(b.particulars, row.particulars)
	appendStr(b.code, row.code)
	appendStr(b.reference, row.reference)
	appendStr(b.otherAcc, row.otherAcc)
	appendStr(b.cardSfx, row.cardSfx)
	appendDec(b.convAmount, row.convAmount)
	appendStr(b.convCurrency, row.convCurrency)
	appendDec(b.convRate, row.convRate)
	appendDec(b.convFee, row.convFee)
	appendBytesOrNull(b.extra, row.extra)
	b.run.BinaryBuilder.Append(b.runID)
	b.extractedAt.Append(arrow.Timestamp(b.extracted))
}

// Len returns the number of rows appended since the last NewRecord.
func (b *TransactionBuilder) Len() int { return b.cols.len() }

// NewRecord returns the rows so far and resets the builder; the next batch
// starts with the capacity of this one. The caller releases the record.
func (b *TransactionBuilder) NewRecord() arrow.Record { return b.cols.newRecord() }

// Release frees the builder's buffers.
func (b *TransactionBuilder) Release() { b.cols.release() }

// PendingBuilder turns Akahu pending-transaction objects into records of
// Pending(). It is not safe for concurrent use.
type PendingBuilder struct {
	loc       *time.Location
	cols      columns
	r         reader
	row       txRow
	runID     []byte
	extracted int64

	user, account, connection, description, currency, typ *array.StringBuilder
	particulars, code, reference, otherAcc, cardSfx       *array.StringBuilder
	extra, run                                            *array.StringBuilder
	date, updatedAt, extractedAt                          *array.TimestampBuilder
	dateLocal                                             *array.Date32Builder
	amount                                                *array.Decimal128Builder
}

// NewPendingBuilder returns a builder of Pending() records.
func NewPendingBuilder(mem memory.Allocator, opts Options) *PendingBuilder {
	b := &PendingBuilder{loc: opts.location(), cols: newColumns(mem, Pending())}
	b.runID = []byte(opts.RunID)
	b.extracted = opts.ExtractedAt.UnixMicro()
	f := b.cols.rb.Field
	s := func(i int) *array.StringBuilder { return f(i).(*array.StringBuilder) }
	t := func(i int) *array.TimestampBuilder { return f(i).(*array.TimestampBuilder) }
	b.user, b.account, b.connection = s(pdUserID), s(pdAccountID), s(pdConnectionID)
	b.date, b.dateLocal, b.updatedAt = t(pdDate), f(pdDateLocal).(*array.Date32Builder), t(pdUpdatedAt)
	b.description, b.amount, b.currency, b.typ = s(pdDescription), f(pdAmount).(*array.Decimal128Builder), s(pdCurrency), s(pdType)
	b.particulars, b.code, b.reference, b.otherAcc, b.cardSfx = s(pdParticulars), s(pdCode), s(pdReference), s(pdOtherAccount), s(pdCardSuffix)
	b.extra, b.run, b.extractedAt = s(pdExtra), s(pdRunID), t(pdExtractedAt)
	return b
}

// Append decodes one Akahu pending-transaction JSON object (amount as a JSON
// number or a string holding one) and appends it as one row; currency is the
// account's currency. On error nothing is appended; the error wraps
// ErrInvalid or ErrOverflow and names the field and the account.
func (b *PendingBuilder) Append(item []byte, currency string) error {
	if err := b.Check(item, currency); err != nil {
		return err
	}
	row := &b.row
	b.user.BinaryBuilder.Append(row.user.b)
	b.account.BinaryBuilder.Append(row.account.b)
	appendStr(b.connection, row.connection)
	b.date.Append(arrow.Timestamp(row.date.v))
	b.dateLocal.Append(arrow.Date32(localDate(row.date.v, b.loc)))
	appendTS(b.updatedAt, row.updatedAt)
	appendReq(b.description, row.description)
	b.amount.Append(decimal128.FromI64(row.amount.v))
	b.currency.Append(currency)
	appendReq(b.typ, row.typ)
	appendStr(b.particulars, row.particulars)
	appendStr(b.code, row.code)
	appendStr(b.reference, row.reference)
	appendStr(b.otherAcc, row.otherAcc)
	appendStr(b.cardSfx, row.cardSfx)
	appendBytesOrNull(b.extra, row.extra)
	b.run.BinaryBuilder.Append(b.runID)
	b.extractedAt.Append(arrow.Timestamp(b.extracted))
	return nil
}

// Check reports the error Append would return for item and currency, without
// appending anything: a caller that must append a list of items all or none
// checks each first (a builder cannot take rows back).
func (b *PendingBuilder) Check(item []byte, currency string) error {
	if err := b.r.decodeTx(item, &b.row, true); err != nil {
		return err
	}
	if currency == "" {
		return txError(&b.row, true, "currency", fmt.Errorf("%w: %w", errMissing, ErrInvalid))
	}
	return nil
}

// Len returns the number of rows appended since the last NewRecord.
func (b *PendingBuilder) Len() int { return b.cols.len() }

// NewRecord returns the rows so far and resets the builder. The caller
// releases the record.
func (b *PendingBuilder) NewRecord() arrow.Record { return b.cols.newRecord() }

// Release frees the builder's buffers.
func (b *PendingBuilder) Release() { b.cols.release() }
