package akahu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/akahu-etl/akahu-parquet/internal/jsonscan"
)

// TestDecodeGuideResponses decodes the list responses transcribed from
// Akahu's published guides, which the module keeps in its top-level testdata
// (the schema package's golden tests build rows from the same files): every
// one is a successful page whose items the decoder finds exactly as
// encoding/json does, aliasing the body, with the same next cursor.
func TestDecodeGuideResponses(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "akahu", "guides", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no guide responses: %v", err)
	}
	d := new(jsonscan.Scanner)
	var env envelope
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Items  []json.RawMessage `json:"items"`
				Cursor struct {
					Next *string `json:"next"`
				} `json:"cursor"`
			}
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			if err := decodeEnvelope(d, body, &env); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !env.success || !env.hasItems {
				t.Errorf("want a successful page, got %s", describe(&env, nil))
			}
			if env.hasNext != (want.Cursor.Next != nil) || (env.hasNext && env.next != *want.Cursor.Next) {
				t.Errorf("cursor: decoded next %q (present %v), encoding/json finds %v", env.next, env.hasNext, want.Cursor.Next)
			}
			if len(env.items) != len(want.Items) || len(env.items) == 0 {
				t.Fatalf("decoded %d items, encoding/json finds %d", len(env.items), len(want.Items))
			}
			for i := range want.Items {
				if !jsonEqual(t, env.items[i], want.Items[i]) {
					t.Errorf("item %d differs from encoding/json's:\n%s\n%s", i, env.items[i], want.Items[i])
				}
			}
			checkItemsAlias(t, body, &env)
		})
	}
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
