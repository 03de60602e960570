package akahu

import (
	"testing"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// pendingOwnerSeeds are pending items: the usual shape and the corners of
// encoding/json's rules.
var pendingOwnerSeeds = []string{
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
	`{"_account":"acc_1","_user":null}`,
	`{"_account":"acc_1","_user":7}`,
	`{"_user":"user_1","_user":"user_2","_account":"acc_1"}`,
	`{"_USER":"user_2","_account":"acc_1"}`,
	`{"_us\u0065r":"user_3","_account":"acc_1"}`,
	`{"_user":"user\u005f4","_account":"acc_1"}`,
	`{"amount":1}`,
	`{"_account":"acc_1"} {}`,
	`{"_account":"acc_1",}`,
	`"acc_1"`,
	`[]`,
	``,
}

// TestPendingOwnerAsEncodingJSON: the account a user's pending item is filed
// under, and the user it names, are the ones encoding/json reads, for every shape;
// the usual shape is read without encoding/json, which made 7 allocations an item
// (its reflection and its validation pass) where the scanner makes two, the ids'
// strings.
func TestPendingOwnerAsEncodingJSON(t *testing.T) {
	var s jsonscan.Scanner
	for _, item := range pendingOwnerSeeds {
		acct, user, ok := PendingOwner(&s, []byte(item))
		wantAcct, wantUser, wantOK := pendingOwnerJSON([]byte(item))
		if acct != wantAcct || user != wantUser || ok != wantOK {
			t.Errorf("%s: account %q user %q ok %v; encoding/json %q %q ok %v", item, acct, user, ok, wantAcct, wantUser, wantOK)
		}
	}
	usual := []byte(pendingOwnerSeeds[0])
	if acct, user, ok := PendingOwner(&s, usual); acct != "acc_1" || user != "user_1" || !ok {
		t.Errorf("usual item: account %q user %q ok %v; want acc_1 user_1", acct, user, ok)
	}
	if got := testing.AllocsPerRun(100, func() { _, _, _ = PendingOwner(&s, usual) }); got > 2 {
		t.Errorf("PendingOwner: %v allocations an item, want at most 2", got)
	}
}

// FuzzPendingOwner: PendingOwner agrees with encoding/json on any input.
func FuzzPendingOwner(f *testing.F) {
	for _, item := range pendingOwnerSeeds {
		f.Add([]byte(item))
	}
	var s jsonscan.Scanner
	f.Fuzz(func(t *testing.T, item []byte) {
		acct, user, ok := PendingOwner(&s, item)
		wantAcct, wantUser, wantOK := pendingOwnerJSON(item)
		if acct != wantAcct || user != wantUser || ok != wantOK {
			t.Fatalf("%q: account %q user %q ok %v; encoding/json %q %q ok %v", item, acct, user, ok, wantAcct, wantUser, wantOK)
		}
	})
}
