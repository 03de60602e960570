package schema

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

var synthMerchants = []struct{ name, site, cat, catName, grp, grpName string }{
	{"Countdown", "https://www.countdown.co.nz", "nzfcc_ckouvvyzt000b08l4gmuv5x0b", "Supermarkets and grocery stores", "group_clasr0ysw0010hk4mf2ol5bxq", "Food"},
	{"Z Energy", "https://z.co.nz", "nzfcc_ckouvvz2k000m08l4ceq28d4g", "Fuel stations", "group_clasr0ysw0012hk4m3ukb2j1z", "Transport"},
	{"Café Kōwhai", "https://kowhai.example.nz", "nzfcc_ckouvvz0s000308l41ctl6u4i", "Cafes and restaurants", "group_clasr0ysw0011hk4m6hlxwi0q", "Lifestyle"},
	{"Mitre 10", "https://www.mitre10.co.nz", "nzfcc_ckouvvyyo000008l4c5ho2r4w", "Hardware stores", "group_clasr0ysw0013hk4m9b3c0gn8", "Household"},
	{"Spark", "https://www.spark.co.nz", "nzfcc_ckouvvz3w000s08l4d8r0o8u7", "Telecommunication services", "group_clasr0ysw0014hk4m7t2x1q4v", "Utilities"},
}

var synthTypes = []string{"EFTPOS", "DEBIT", "CREDIT", "PAYMENT", "TRANSFER", "STANDING ORDER", "CREDIT CARD", "DIRECT DEBIT", "FEE", "INTEREST"}

// syntheticItems returns n realistic settled transactions (~1 KB each, newest
// first like an Akahu page), about 70% enriched, some with currency
// conversion, all with a few fields the schema does not name.
func syntheticItems(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	day := time.Date(2024, 7, 1, 0, 0, 0, 0, defaultLocation)
	items := make([][]byte, n)
	for i := range items {
		if rng.IntN(3) == 0 {
			day = day.AddDate(0, 0, -1)
		}
		m := synthMerchants[rng.IntN(len(synthMerchants))]
		cents := rng.IntN(2_000_00) + 1
		amount := fmt.Sprintf("-%d.%02d", cents/100, cents%100)
		if rng.IntN(5) == 0 {
			amount = fmt.Sprintf("%d.%d", cents/100, cents%10) // credits, one decimal as Akahu often sends
		}
		balance := fmt.Sprintf("%d.%02d", rng.IntN(50_000), rng.IntN(100))
		created := day.Add(time.Duration(rng.IntN(86400)) * time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"_id":"trans_clx%022d","_account":"acc_clx0000000000000000000%04d","_user":"user_clx00000000000000000000001",`, i+int(seed)*1_000_000, rng.IntN(3))
		fmt.Fprintf(&sb, `"_connection":"conn_cjgaawozb000001nyd111xixr","created_at":"%s","updated_at":"%s",`, created, created)
		fmt.Fprintf(&sb, `"date":"%s","hash":"%016x",`, day.UTC().Format("2006-01-02T15:04:05.000Z"), rng.Uint64())
		fmt.Fprintf(&sb, `"description":"%s %s NZ %04d","amount":%s,"balance":%s,"type":"%s"`,
			strings.ToUpper(m.name), []string{"AUCKLAND", "WELLINGTON", "CHRISTCHURCH", "DUNEDIN"}[rng.IntN(4)], rng.IntN(10000),
			amount, balance, synthTypes[rng.IntN(len(synthTypes))])
		if rng.IntN(10) < 7 {
			fmt.Fprintf(&sb, `,"merchant":{"_id":"merchant_cjgaatewa%016d","name":"%s","website":"%s","business_number":"94290%08d"}`,
				rng.IntN(5), m.name, m.site, rng.IntN(1e8))
			fmt.Fprintf(&sb, `,"category":{"_id":"%s","name":"%s","groups":{"personal_finance":{"_id":"%s","name":"%s"}},"components":[{"name":"%s","percentage":100}]}`,
				m.cat, m.catName, m.grp, m.grpName, m.catName)
			sb.WriteString(`,"meta":{"card_suffix":"` + fmt.Sprintf("%04d", rng.IntN(10000)) + `","logo":"https://cdn.akahu.nz/logos/merchants/` + fmt.Sprintf("%08x", rng.Uint32()) + `.png"`)
			if rng.IntN(10) == 0 {
				fmt.Fprintf(&sb, `,"conversion":{"amount":%d.%02d,"currency":"AUD","rate":1.0%08d,"fee":0.%02d}`, rng.IntN(500), rng.IntN(100), rng.IntN(1e8), rng.IntN(100))
			}
			sb.WriteString(`}`)
		} else {
			fmt.Fprintf(&sb, `,"meta":{"particulars":"PART%03d","code":"CODE","reference":"REF %06d","other_account":"12-3%03d-0%06d-00"}`,
				rng.IntN(1000), rng.IntN(1e6), rng.IntN(1000), rng.IntN(1e6))
		}
		sb.WriteString("}")
		items[i] = []byte(sb.String())
	}
	return items
}
