package pipeline

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/akahu-etl/akahu-parquet/sources/akahu"
)

// Tokens yields a fleet's user tokens in order, each with the Akahu user id the
// operator claims for it ("" where none; see Config.UserIDs), every time it is
// called, and returns why it stopped early (nil when it did not, or when yield
// asked it to). Each token is a secret: an error must not quote one.
//
// A run calls it during discovery and keeps only the tokens of the users it extracts
// (and of tokens no earlier run resolved), so a process that runs a fleet's shards in
// turn (RunShards) holds no fleet-sized list during or between its runs; it may call
// it once more, to look up a failing token's recorded user (see knownUser). A source
// that reads a file (TokensFile) reads it each time.
type Tokens func(yield func(tok akahu.Token, userID string) bool) error

// TokenList returns the Tokens of a list held in memory: users in order, with ids
// (nil, or one per token, "" where unknown).
func TokenList(users []akahu.Token, ids []string) Tokens {
	return func(yield func(akahu.Token, string) bool) error {
		for i, tok := range users {
			id := ""
			if ids != nil {
				id = ids[i]
			}
			if !yield(tok, id) {
				return nil
			}
		}
		return nil
	}
}

// TokensFile returns the Tokens of a tokens file, read from path each time they are
// asked for: one token a line, optionally followed by the token's Akahu user id
// (`TOKEN user_…`, separated by spaces or a tab); blank lines and lines starting
// with # are skipped. A malformed line stops the reading with an error that names
// the file and the line, never the token or the id. Duplicate tokens are not looked
// for here (that needs every token at once): CheckTokensFile does, once, and a run
// refuses a token it meets twice among the users it keeps.
func TokensFile(path string) Tokens {
	return func(yield func(akahu.Token, string) bool) error {
		return readTokensFile(path, func(_ int, tok akahu.Token, id string) bool { return yield(tok, id) })
	}
}

// readTokensFile reads a tokens file, handing each token to yield with its line.
func readTokensFile(path string, yield func(line int, tok akahu.Token, id string) bool) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) > 2 {
			return fmt.Errorf("tokens file %s line %d: want a token, then optionally its user id (user_…); a token must not contain spaces", path, n)
		}
		id := ""
		if len(fields) == 2 {
			id = fields[1]
			if err := CheckUserID(id); err != nil {
				return fmt.Errorf("tokens file %s line %d, second column: %v", path, n, err)
			}
		}
		if !yield(n, akahu.Token(fields[0]), id) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tokens file %s: %w", path, err)
	}
	return nil
}

// CheckTokensFile reads a tokens file once, as a run would (TokensFile), and also
// refuses one with no token or with a token on two lines; it returns how many tokens
// it holds. It holds a fingerprint per token while it reads, never the tokens.
func CheckTokensFile(path string) (tokens int, err error) {
	seen := map[string]int{}
	var dup error
	err = readTokensFile(path, func(line int, tok akahu.Token, _ string) bool {
		tokens++
		fp := tokenFingerprint(tok)
		if prev, ok := seen[fp]; ok {
			dup = fmt.Errorf("tokens file %s line %d: same token as line %d", path, line, prev)
			return false
		}
		seen[fp] = line
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case dup != nil:
		return 0, dup
	case tokens == 0:
		return 0, fmt.Errorf("tokens file %s has no tokens (only blank or # comment lines)", path)
	}
	return tokens, nil
}
