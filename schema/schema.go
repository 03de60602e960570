package schema

import (
	"strconv"
	"time"
	_ "time/tzdata" // DefaultTimeZone must resolve on hosts without zoneinfo

	"github.com/apache/arrow/go/v17/arrow"
)

// Version is the schema version, recorded in every schema's metadata under
// MetadataKeyVersion. Changes are additive only.
const Version = 1

// MetadataKeyVersion is the schema-metadata (and Parquet key-value) key that
// carries Version.
const MetadataKeyVersion = "akahu_parquet.schema_version"

// DefaultTimeZone is the dataset time zone used for local dates when
// Options.Location is nil. Its data is embedded with time/tzdata.
const DefaultTimeZone = "Pacific/Auckland"

// MetadataKeyDictionary is the field-metadata key marking low-cardinality
// string columns; its value is "true". It is a hint for the Parquet sink.
const MetadataKeyDictionary = "parquet.dictionary"

// Money is the type of amounts and balances: 18 digits, 4 after the point.
var Money = &arrow.Decimal128Type{Precision: 18, Scale: 4}

// Rate is the type of conversion rates: 18 digits, 10 after the point.
var Rate = &arrow.Decimal128Type{Precision: 18, Scale: 10}

// Timestamp is the type of every instant: microseconds since the epoch, UTC.
var Timestamp = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// Date is the type of local-date columns (days since the epoch).
var Date = arrow.FixedWidthTypes.Date32

// Options configure a builder.
type Options struct {
	Location    *time.Location // dataset zone for date_local / snapshot_date; nil = DefaultTimeZone
	RunID       string         // fills _run_id
	ExtractedAt time.Time      // fills _extracted_at
}

var defaultLocation = func() *time.Location {
	loc, err := time.LoadLocation(DefaultTimeZone)
	if err != nil {
		panic("schema: embedded tzdata lacks " + DefaultTimeZone + ": " + err.Error())
	}
	return loc
}()

func (o Options) location() *time.Location {
	if o.Location == nil {
		return defaultLocation
	}
	return o.Location
}

var dictMeta = arrow.NewMetadata([]string{MetadataKeyDictionary}, []string{"true"})

func strField(name string, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: nullable}
}

func dict(name string, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: nullable, Metadata: dictMeta}
}

func field(name string, t arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable}
}

func newSchema(fields []arrow.Field) *arrow.Schema {
	md := arrow.NewMetadata([]string{MetadataKeyVersion}, []string{strconv.Itoa(Version)})
	return arrow.NewSchema(fields, &md)
}

// Column positions of Transactions() (and the first columns of Deletions()).
const (
	txID = iota
	txUserID
	txAccountID
	txConnectionID
	txDate
	txDateLocal
	txCreatedAt
	txUpdatedAt
	txDescription
	txAmount
	txBalance
	txCurrency
	txType
	txMerchantID
	txMerchantName
	txMerchantWebsite
	txCategoryID
	txCategoryName
	txCategoryGroupID
	txCategoryGroupName
	txParticulars
	txCode
	txReference
	txOtherAccount
	txCardSuffix
	txConversionAmount
	txConversionCurrency
	txConversionRate
	txConversionFee
	txExtra
	txRunID
	txExtractedAt
	txNumFields
)

func transactionFields() []arrow.Field {
	return []arrow.Field{
		strField("id", false),
		dict("user_id", false),
		dict("account_id", false),
		dict("connection_id", true),
		field("date", Timestamp, false),
		field("date_local", Date, false),
		field("created_at", Timestamp, true),
		field("updated_at", Timestamp, true),
		strField("description", false),
		field("amount", Money, false),
		field("balance", Money, true),
		dict("currency", false),
		dict("type", false),
		strField("merchant_id", true),
		dict("merchant_name", true),
		strField("merchant_website", true),
		dict("category_id", true),
		dict("category_name", true),
		dict("category_group_id", true),
		dict("category_group_name", true),
		strField("particulars", true),
		strField("code", true),
		strField("reference", true),
		strField("other_account", true),
		strField("card_suffix", true),
		field("conversion_amount", Money, true),
		dict("conversion_currency", true),
		field("conversion_rate", Rate, true),
		field("conversion_fee", Money, true),
		strField("extra", true),
		strField("_run_id", false),
		field("_extracted_at", Timestamp, false),
	}
}

// Transactions is the schema of settled transactions, one row per Akahu
// transaction, columns in the order of docs/design.md "Transactions schema".
func Transactions() *arrow.Schema { return newSchema(transactionFields()) }

// Deletions is the schema of tombstones: the Transactions columns (the last
// known values) followed by deleted_reason ("deleted" or "purged"),
// deleted_by_run and deleted_at.
func Deletions() *arrow.Schema {
	f := transactionFields()
	f = append(f,
		strField("deleted_reason", false),
		strField("deleted_by_run", false),
		field("deleted_at", Timestamp, false),
	)
	return newSchema(f)
}

// Column positions of Pending().
const (
	pdUserID = iota
	pdAccountID
	pdConnectionID
	pdDate
	pdDateLocal
	pdUpdatedAt
	pdDescription
	pdAmount
	pdCurrency
	pdType
	pdParticulars
	pdCode
	pdReference
	pdOtherAccount
	pdCardSuffix
	pdExtra
	pdRunID
	pdExtractedAt
	pdNumFields
)

// Pending is the schema of pending transactions (which have no id).
func Pending() *arrow.Schema {
	return newSchema([]arrow.Field{
		dict("user_id", false),
		dict("account_id", false),
		dict("connection_id", true),
		field("date", Timestamp, false),
		field("date_local", Date, false),
		field("updated_at", Timestamp, true),
		strField("description", false),
		field("amount", Money, false),
		dict("currency", false),
		dict("type", false),
		strField("particulars", true),
		strField("code", true),
		strField("reference", true),
		strField("other_account", true),
		strField("card_suffix", true),
		strField("extra", true),
		strField("_run_id", false),
		field("_extracted_at", Timestamp, false),
	})
}

// Column positions of Accounts().
const (
	acSnapshotDate = iota
	acAccountID
	acUserID
	acAuthorisationID
	acConnectionID
	acConnectionName
	acName
	acStatus
	acType
	acFormattedAccount
	acAttributes
	acCurrency
	acBalanceCurrent
	acBalanceAvailable
	acBalanceLimit
	acBalanceOverdrawn
	acRefreshedBalance
	acRefreshedTransactions
	acRefreshedMeta
	acExtra
	acRunID
	acExtractedAt
	acNumFields
)

// Accounts is the schema of account snapshots: one row per account per
// snapshot_date (the local date of Options.ExtractedAt).
func Accounts() *arrow.Schema {
	return newSchema([]arrow.Field{
		field("snapshot_date", Date, false),
		strField("account_id", false),
		dict("user_id", false),
		dict("authorisation_id", true),
		dict("connection_id", true),
		dict("connection_name", true),
		strField("name", true),
		dict("status", true),
		dict("type", true),
		strField("formatted_account", true),
		dict("attributes", true),
		dict("currency", true),
		field("balance_current", Money, true),
		field("balance_available", Money, true),
		field("balance_limit", Money, true),
		field("balance_overdrawn", arrow.FixedWidthTypes.Boolean, true),
		field("refreshed_balance", Timestamp, true),
		field("refreshed_transactions", Timestamp, true),
		field("refreshed_meta", Timestamp, true),
		strField("extra", true),
		strField("_run_id", false),
		field("_extracted_at", Timestamp, false),
	})
}
