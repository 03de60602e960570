package schema

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// accountRow is the reusable intermediate of one account.
type accountRow struct {
	id, authorisation, connectionID, connectionName optStr
	name, status, typ, formatted, currency          optStr
	attributes                                      [][]byte
	hasAttributes                                   bool
	current, available, limit, overdrawn            optNum
	refBalance, refTransactions, refMeta            optNum
	extra                                           []byte
}

// AccountBuilder turns Akahu account objects into records of Accounts(),
// one row per account per snapshot date. It is not safe for concurrent use.
type AccountBuilder struct {
	cols      columns
	r         reader
	row       accountRow
	attrs     []byte
	runID     []byte
	extracted int64
	snapshot  int32

	accountID, userID, authorisation, connectionID, connectionName *array.StringBuilder
	name, status, typ, formatted, attributes, currency, extra, run *array.StringBuilder
	current, available, limit                                      *array.Decimal128Builder
	overdrawn                                                      *array.BooleanBuilder
	refBalance, refTransactions, refMeta, extractedAt              *array.TimestampBuilder
	snapshotDate                                                   *array.Date32Builder
}

// NewAccountBuilder returns a builder of Accounts() records. snapshot_date is
// the local date of opts.ExtractedAt in opts.Location.
func NewAccountBuilder(mem memory.Allocator, opts Options) *AccountBuilder {
	b := &AccountBuilder{cols: newColumns(mem, Accounts())}
	b.runID = []byte(opts.RunID)
	b.extracted = opts.ExtractedAt.UnixMicro()
	b.snapshot = localDate(b.extracted, opts.location())
	f := b.cols.rb.Field
	s := func(i int) *array.StringBuilder { return f(i).(*array.StringBuilder) }
	d := func(i int) *array.Decimal128Builder { return f(i).(*array.Decimal128Builder) }
	t := func(i int) *array.TimestampBuilder { return f(i).(*array.TimestampBuilder) }
	b.snapshotDate = f(acSnapshotDate).(*array.Date32Builder)
	b.accountID, b.userID, b.authorisation = s(acAccountID), s(acUserID), s(acAuthorisationID)
	b.connectionID, b.connectionName = s(acConnectionID), s(acConnectionName)
	b.name, b.status, b.typ, b.formatted = s(acName), s(acStatus), s(acType), s(acFormattedAccount)
	b.attributes, b.currency = s(acAttributes), s(acCurrency)
	b.current, b.available, b.limit = d(acBalanceCurrent), d(acBalanceAvailable), d(acBalanceLimit)
	b.overdrawn = f(acBalanceOverdrawn).(*array.BooleanBuilder)
	b.refBalance, b.refTransactions, b.refMeta = t(acRefreshedBalance), t(acRefreshedTransactions), t(acRefreshedMeta)
	b.extra, b.run, b.extractedAt = s(acExtra), s(acRunID), t(acExtractedAt)
	return b
}

// Append decodes one Akahu account JSON object and appends it as one row for
// the user userID. On error nothing is appended; the error wraps ErrInvalid
// or ErrOverflow and names the field and the account's _id.
func (b *AccountBuilder) Append(item []byte, userID string) error {
	row := &b.row
	if err := b.r.decodeAccount(item, row); err != nil {
		return err
	}
	if userID == "" {
		return accountError(row, "userID", fmt.Errorf("%w: %w", errMissing, ErrInvalid))
	}
	// attributes: sorted, comma-joined; an absent list is null, [] is "".
	sortBytes(row.attributes)
	b.attrs = b.attrs[:0]
	for i, a := range row.attributes {
		if i > 0 {
			b.attrs = append(b.attrs, ',')
		}
		b.attrs = append(b.attrs, a...)
	}
	b.snapshotDate.Append(arrow.Date32(b.snapshot))
	b.accountID.BinaryBuilder.Append(row.id.b)
	b.userID.Append(userID)
	appendStr(b.authorisation, row.authorisation)
	appendStr(b.connectionID, row.connectionID)
	appendStr(b.connectionName, row.connectionName)
	appendStr(b.name, row.name)
	appendStr(b.status, row.status)
	appendStr(b.typ, row.typ)
	appendStr(b.formatted, row.formatted)
	appendStr(b.attributes, optStr{b: b.attrs, ok: row.hasAttributes})
	appendStr(b.currency, row.currency)
	appendDec(b.current, row.current)
	appendDec(b.available, row.available)
	appendDec(b.limit, row.limit)
	if row.overdrawn.ok {
		b.overdrawn.Append(row.overdrawn.v == 1)
	} else {
		b.overdrawn.AppendNull()
	}
	appendTS(b.refBalance, row.refBalance)
	appendTS(b.refTransactions, row.refTransactions)
	appendTS(b.refMeta, row.refMeta)
	appendBytesOrNull(b.extra, row.extra)
	b.run.BinaryBuilder.Append(b.runID)
	b.extractedAt.Append(arrow.Timestamp(b.extracted))
	return nil
}

// Len returns the number of rows appended since the last NewRecord.
func (b *AccountBuilder) Len() int { return b.cols.len() }

// NewRecord returns the rows so far and resets the builder. The caller
// releases the record.
func (b *AccountBuilder) NewRecord() arrow.Record { return b.cols.newRecord() }

// Release frees the builder's buffers.
func (b *AccountBuilder) Release() { b.cols.release() }

func sortBytes(s [][]byte) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && bytes.Compare(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func accountError(row *accountRow, field string, err error) error {
	what := "account (no _id)"
	if row.id.ok {
		what = fmt.Sprintf("account %q", row.id.b)
	}
	if field == "" {
		return fmt.Errorf("schema: %s: %w", what, err)
	}
	return fmt.Errorf("schema: %s: field %q: %w", what, field, err)
}

func (r *reader) decodeAccount(item []byte, row *accountRow) error {
	attrs := row.attributes[:0]
	*row = accountRow{attributes: attrs}
	r.reset(item)
	if err := r.decodeAccountObject(row); err != nil {
		return accountError(row, "", err)
	}
	if err := r.finish(); err != nil {
		return accountError(row, "", err)
	}
	if r.ferr.err != nil {
		return accountError(row, r.ferr.field, r.ferr.err)
	}
	if !row.id.ok {
		return accountError(row, "_id", fmt.Errorf("%w: %w", errMissing, ErrInvalid))
	}
	row.extra = r.extra.render()
	return nil
}

func (r *reader) decodeAccountObject(row *accountRow) error {
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
		case "_id":
			err = r.str("_id", &row.id)
		case "_authorisation":
			err = r.str("_authorisation", &row.authorisation)
		case "name":
			err = r.str("name", &row.name)
		case "status":
			err = r.str("status", &row.status)
		case "type":
			err = r.str("type", &row.typ)
		case "formatted_account":
			err = r.str("formatted_account", &row.formatted)
		case "attributes":
			err = r.decodeAttributes(row)
		case "connection":
			err = r.members("connection", &x.connection, func(name, raw []byte) (bool, error) {
				switch string(name) {
				case "_id":
					return true, r.str("connection._id", &row.connectionID)
				case "name":
					return true, r.str("connection.name", &row.connectionName)
				}
				return false, nil
			})
		case "balance":
			err = r.members("balance", &x.balance, func(name, raw []byte) (bool, error) {
				switch string(name) {
				case "currency":
					return true, r.str("balance.currency", &row.currency)
				case "current":
					return true, r.decimal("balance.current", Money.Precision, Money.Scale, &row.current)
				case "available":
					return true, r.decimal("balance.available", Money.Precision, Money.Scale, &row.available)
				case "limit":
					return true, r.decimal("balance.limit", Money.Precision, Money.Scale, &row.limit)
				case "overdrawn":
					return true, r.boolean("balance.overdrawn", &row.overdrawn)
				}
				return false, nil
			})
		case "refreshed":
			err = r.members("refreshed", &x.refreshed, func(name, raw []byte) (bool, error) {
				switch string(name) {
				case "balance":
					return true, r.timestamp("refreshed.balance", &row.refBalance)
				case "transactions":
					return true, r.timestamp("refreshed.transactions", &row.refTransactions)
				case "meta":
					return true, r.timestamp("refreshed.meta", &row.refMeta)
				}
				return false, nil
			})
		default:
			err = r.unknown(nil, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

// members walks an object-valued field; known reports whether fn consumed
// the member's value, otherwise it goes to extra under ref.
func (r *reader) members(field string, ref *xref, known func(name, raw []byte) (bool, error)) error {
	ok, err := r.openObject(field)
	if err != nil || !ok {
		return err
	}
	for {
		name, raw, more, err := r.nextName()
		if err != nil || !more {
			return err
		}
		done, err := known(name, raw)
		if err == nil && !done {
			err = r.unknown(ref, name, raw)
		}
		if err != nil {
			return err
		}
	}
}

func (r *reader) decodeAttributes(row *accountRow) error {
	switch r.sc.PeekKind() {
	case '[':
		if err := r.sc.BeginArray(); err != nil {
			return syntaxErr(err)
		}
	case 'n':
		_, err := r.value()
		return err
	default:
		if _, err := r.value(); err != nil {
			return err
		}
		r.fail("attributes", fmt.Errorf("%w: want an array of strings", errType))
		return nil
	}
	row.hasAttributes = true
	for {
		more, err := r.sc.NextElem()
		if err != nil {
			return syntaxErr(err)
		}
		if !more {
			return nil
		}
		v, err := r.value()
		if err != nil {
			return err
		}
		if v[0] != '"' {
			r.fail("attributes", fmt.Errorf("%w: want an array of strings", errType))
			continue
		}
		row.attributes = append(row.attributes, r.unquote(v))
	}
}
