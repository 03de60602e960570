package akahutest

// Static pools the generator draws from. Descriptions deliberately mix Māori
// macrons, emoji, CJK, quotes, backslashes and control characters so that
// every client must JSON-unescape properly.
var descriptions = []string{
	"COUNTDOWN PONSONBY AUCKLAND NZ",
	"Pak'nSave Māngere",
	"Te Whare Kai o Ngāti Whātua ☕",
	"Café “Kōwhai” — flat white 🍩",
	"寿司 SUSHI 東京 Wellington",
	`Transfer to "Rainy Day" savings`,
	`Back\slash Trading Ltd`,
	"NEW WORLD\tTHORNDON",
	"Z ENERGY TE AWAMUTU",
	"Uber *Trip 🚗 HELP.UBER.COM",
	"Spotify P1A2B3C4 Stockholm",
	"Interest credit",
	"Monthly A/C fee",
	"IRD — TAX REFUND 2025",
	"Kiwi Café & Bar <Queenstown>",
	"ÅÄÖ Nordic Imports",
	"Line one\nLine two memo",
	"Ngā mihi nui – koha 🙏🏽",
	"4 Square Ōhope",
	"ODD\u0001CONTROL\u001fCHARS",
	"😀😃😄",
	"Paymark 12345678 ✓ MIXED case",
	"Mitre 10 MEGA Hāwera",
	"Ōtautahi Christchurch Parking",
	"한국 식당 Auckland",
	"Salary ACME Ltd '24/25'",
	"",
}

var debitTypes = []string{"EFTPOS", "DEBIT", "PAYMENT", "DIRECT DEBIT", "STANDING ORDER", "ATM", "FEE", "CREDIT CARD", "TRANSFER", "TAX", "LOAN"}

var creditTypes = []string{"CREDIT", "DIRECT CREDIT", "INTEREST", "TRANSFER", "PAYMENT", "TAX"}

// unknownTypes are not in the documented list: clients must tolerate them.
var unknownTypes = []string{"BILL PAYMENT", "DEPOSIT", "ROUND UP"}

// specialCents are amounts that break float-based money handling.
var specialCents = []int64{10, 20, -1150, 123456789, 0, -1, 1, -10, 30, 70, -2000, 100000000}

type merchant struct {
	id, name, website, businessNumber string
}

type category struct {
	id, name, groupID, groupName string
	components                   []string
}

var merchants = func() []merchant {
	raw := []struct{ name, web, bn string }{
		{"Countdown", "countdown.co.nz", "9429039098767"},
		{"PAK'nSAVE", "paknsave.co.nz", ""},
		{"Z Energy", "z.co.nz", "9429037532164"},
		{"Uber", "", ""},
		{"Spotify", "spotify.com", ""},
		{"Mitre 10", "mitre10.co.nz", "9429040322581"},
		{"Café Kōwhai", "", ""},
		{"寿司 Sushi Bar", "sushi.example.nz", ""},
	}
	out := make([]merchant, len(raw))
	for i, m := range raw {
		out[i] = merchant{id: randID("merchant_", 25, mixString("m"+m.name)), name: m.name, website: m.web, businessNumber: m.bn}
	}
	return out
}()

var categories = func() []category {
	raw := []struct {
		name, group string
		comps       []string
	}{
		{"Supermarkets and grocery stores", "Food", []string{"groceries"}},
		{"Fuel stations", "Transport", []string{"fuel", "vehicle"}},
		{"Cafes and restaurants", "Lifestyle", []string{"dining"}},
		{"Rideshare", "Transport", []string{"taxi"}},
		{"Music streaming", "Lifestyle", []string{"subscriptions", "entertainment"}},
		{"Hardware stores", "Household", []string{"home"}},
	}
	out := make([]category, len(raw))
	for i, c := range raw {
		out[i] = category{
			id:         randID("nzfcc_", 25, mixString("c"+c.name)),
			name:       c.name,
			groupID:    randID("group_", 25, mixString("g"+c.group)),
			groupName:  c.group,
			components: c.comps,
		}
	}
	return out
}()

type bank struct {
	id, name, logo string
	prefix         string // NZ bank number
}

var banks = func() []bank {
	raw := []struct{ name, prefix string }{
		{"ASB", "12"}, {"ANZ", "01"}, {"BNZ", "02"}, {"Kiwibank", "38"}, {"Westpac", "03"}, {"Te Kura Bank Ā", "15"},
	}
	out := make([]bank, len(raw))
	for i, b := range raw {
		id := randID("conn_", 25, mixString("conn"+b.name))
		out[i] = bank{id: id, name: b.name, logo: "https://cdn.akahu.nz/logos/" + id + ".png", prefix: b.prefix}
	}
	return out
}()

var kiwisaverProvider = bank{
	id:   randID("conn_", 25, mixString("conn Simplicity")),
	name: "Simplicity KiwiSaver",
	logo: "https://cdn.akahu.nz/logos/simplicity.png",
}

// accountKinds is the per-user account layout, cycled when AccountsPerUser
// exceeds it. Index 1 is always INACTIVE; index 2 never has TRANSACTIONS.
var accountKinds = []struct {
	typ, name  string
	hasTx      bool
	hasBalance bool // running balance on each transaction
}{
	{"CHECKING", "Everyday", true, true},
	{"SAVINGS", "Rainy Day Saver", true, false},
	{"KIWISAVER", "KiwiSaver Growth", false, false},
	{"CREDITCARD", "Visa Platinum", true, true},
	{"LOAN", "Home Loan", true, false},
	{"FOREIGN", "USD Call Account", true, true},
	{"TERMDEPOSIT", "Term Deposit 6m", false, false},
	{"INVESTMENT", "Share Portfolio", true, false},
	{"WALLET", "Cash Wallet", true, true},
}

var foreignCurrencies = []string{"USD", "AUD", "GBP", "EUR"}

var holders = []string{"F Bar", "Aroha Ngata", "Wiremu Pōtae", "李 小龙", "Zoë O'Connor"}
