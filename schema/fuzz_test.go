package schema

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/go-json-experiment/json/jsontext"
)

// FuzzTransactionAppend: Append never panics; a failure appends nothing and
// is classified; a success yields exactly one more row in a valid record,
// and only JSON that jsontext (strict: valid UTF-8, unique names) accepts
// can succeed.
func FuzzTransactionAppend(f *testing.F) {
	for _, name := range []string{local("enriched_transactions.json"), guide("seed001_transactions.json"), guide("seed004_transactions.json")} {
		for _, it := range loadItems(f, name) {
			f.Add([]byte(it))
			f.Add(withUser(it))
		}
	}
	for _, it := range syntheticItems(20, 3) {
		f.Add(it)
	}
	f.Add([]byte(minimalTx))
	f.Add([]byte(`{"_id":"t","_user":"u","_account":"a","date":"2024-01-01T00:00:00+13:00","amount":"1e2","meta":{"conversion":{"rate":"0.5"}}}`))
	mem := memory.NewGoAllocator()
	b := NewTransactionBuilder(mem, testOptions())
	f.Fuzz(func(t *testing.T, item []byte) {
		before := b.Len()
		err := b.Append(item, "NZD")
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverflow) {
				t.Fatalf("unclassified error: %v", err)
			}
			if b.Len() != before {
				t.Fatalf("failed Append changed Len %d -> %d", before, b.Len())
			}
			return
		}
		if b.Len() != before+1 {
			t.Fatalf("Len %d -> %d", before, b.Len())
		}
		if !jsontext.Value(item).IsValid() {
			t.Fatalf("accepted an item jsontext rejects: %q", item)
		}
		rec := b.NewRecord()
		defer rec.Release()
		validateRecord(t, rec, Transactions())
	})
}

// FuzzPendingAppend is the same property for pending items; Check gives the
// error Append gives, and appends nothing.
func FuzzPendingAppend(f *testing.F) {
	for _, it := range loadItems(f, local("pending_transactions.json")) {
		f.Add([]byte(it))
	}
	b := NewPendingBuilder(memory.NewGoAllocator(), testOptions())
	f.Fuzz(func(t *testing.T, item []byte) {
		cerr := b.Check(item, "NZD")
		if b.Len() != 0 {
			t.Fatal("Check appended")
		}
		err := b.Append(item, "NZD")
		if fmt.Sprint(cerr) != fmt.Sprint(err) {
			t.Fatalf("Check says %v, Append %v", cerr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverflow) {
				t.Fatalf("unclassified error: %v", err)
			}
			if b.Len() != 0 {
				t.Fatal("failed Append appended")
			}
			return
		}
		rec := b.NewRecord()
		defer rec.Release()
		if rec.NumRows() != 1 {
			t.Fatalf("%d rows", rec.NumRows())
		}
		validateRecord(t, rec, Pending())
	})
}

// FuzzAccountAppend is the same property for accounts.
func FuzzAccountAppend(f *testing.F) {
	for _, it := range loadItems(f, guide("seed000_accounts.json")) {
		f.Add([]byte(it))
	}
	b := NewAccountBuilder(memory.NewGoAllocator(), testOptions())
	f.Fuzz(func(t *testing.T, item []byte) {
		if err := b.Append(item, "user_1"); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrOverflow) {
				t.Fatalf("unclassified error: %v", err)
			}
			if b.Len() != 0 {
				t.Fatal("failed Append appended")
			}
			return
		}
		rec := b.NewRecord()
		defer rec.Release()
		if rec.NumRows() != 1 {
			t.Fatalf("%d rows", rec.NumRows())
		}
		validateRecord(t, rec, Accounts())
	})
}
