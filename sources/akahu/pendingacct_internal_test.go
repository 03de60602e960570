package akahu

import (
	"testing"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// pendingAccountSeeds are pending items: the usual shape and the corners of
// encoding/json's rules.
var pendingAccountSeeds = []string{
	`{"_user":"user_1","_account":"acc_1","_connection":"conn_1","date":"2026-02-27T11:00:00.000Z","description":"D","amount":-1.25,"type":"EFTPOS","meta":{"_account":"x"}}`,
	`{"_account":null}`,
	`{"_account":5}`,
	`{"_account":["acc_1"]}`,
	`{"_account":"acc_1","_account":"acc_2"}`,
	`{"_account":"acc_1","_ACCOUNT":"acc_2"}`,
	`{"_Account":"acc_2"}`,
	`{"_acco\u0075nt":"acc_3"}`,
	`{"_account":"acc\u005f4"}`,
	`{"_account":"bad ` + "\xff" + `"}`,
	`{"amount":1}`,
	`{"_account":"acc_1"} {}`,
	`{"_account":"acc_1",}`,
	`"acc_1"`,
	`[]`,
	``,
}

// TestPendingAccountAsEncodingJSON: the account a user's pending item is filed
// under is the one encoding/json reads, for every shape; the usual shape is read
// without encoding/json, which made 7 allocations an item (its reflection
// and its validation pass) where the scanner makes one, the id's string.
func TestPendingAccountAsEncodingJSON(t *testing.T) {
	var s jsonscan.Scanner
	for _, item := range pendingAccountSeeds {
		got, gok := PendingAccount(&s, []byte(item))
		want, wok := pendingAccountJSON([]byte(item))
		if got != want || gok != wok {
			t.Errorf("%s: account %q ok %v; encoding/json %q ok %v", item, got, gok, want, wok)
		}
	}
	usual := []byte(pendingAccountSeeds[0])
	if got := testing.AllocsPerRun(100, func() { _, _ = PendingAccount(&s, usual) }); got > 1 {
		t.Errorf("PendingAccount: %v allocations an item, want at most 1", got)
	}
}

// FuzzPendingAccount: PendingAccount agrees with encoding/json on any input.
func FuzzPendingAccount(f *testing.F) {
	for _, item := range pendingAccountSeeds {
		f.Add([]byte(item))
	}
	var s jsonscan.Scanner
	f.Fuzz(func(t *testing.T, item []byte) {
		got, gok := PendingAccount(&s, item)
		want, wok := pendingAccountJSON(item)
		if got != want || gok != wok {
			t.Fatalf("%q: account %q ok %v; encoding/json %q ok %v", item, got, gok, want, wok)
		}
	})
}
