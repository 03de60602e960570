package akahu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Me is the authenticated user (GET /me).
type Me struct{ ID, Email string }

// Account is one connected account (GET /accounts). Only the fields the
// pipeline plans with are typed; Raw keeps the object exactly as served.
type Account struct {
	ID, Name, Status, Type, Currency, ConnectionID, ConnectionName, AuthorisationID string
	Attributes                                                                      []string
	// TransactionsRefreshed is refreshed.transactions: when Akahu last fetched the
	// account's transactions from the bank (Akahu's clock). Zero when absent or not a
	// timestamp.
	TransactionsRefreshed time.Time
	Raw                   json.RawMessage // the account object as served
}

// HasTransactions reports whether the account has the TRANSACTIONS
// attribute; only such accounts serve transactions.
func (a Account) HasTransactions() bool { return slices.Contains(a.Attributes, "TRANSACTIONS") }

// Page is one API page of a transaction walk. Index counts pages from 0 in
// the walk, empty pages included. Items alias a buffer that is reused for the
// next page and, after the walk, by a later walk of the same Client: they are
// valid only during the callback; copy what you keep.
type Page struct {
	Index int
	Items []json.RawMessage
}

// Me returns the user the token belongs to.
func (c *Client) Me(ctx context.Context, user Token) (Me, error) {
	cl := &call{endpoint: "GET /me", path: "/me", user: user, want: wantItem}
	if err := checkUser(cl); err != nil {
		return Me{}, err
	}
	var (
		buf []byte
		env envelope
	)
	if err := c.do(ctx, cl, &buf, &env); err != nil {
		return Me{}, err
	}
	var w struct {
		ID    string `json:"_id"`
		Email string `json:"email"`
	}
	if err := json.Unmarshal(env.item, &w); err != nil {
		return Me{}, cl.errorf(ErrMalformed, 200, 0, "", fmt.Errorf("decoding item: %w", err))
	}
	if w.ID == "" {
		return Me{}, cl.errorf(ErrMalformed, 200, 0, "", fmt.Errorf(`item has no "_id"`))
	}
	return Me{ID: w.ID, Email: w.Email}, nil
}

// Refresh asks Akahu to fetch the user's data from their banks now (POST /refresh)
// instead of waiting for its own schedule. Akahu answers at once and refreshes in the
// background: an account's refreshed.transactions ([Account].TransactionsRefreshed)
// moves past the request when its refresh is done. Akahu may ignore a refresh asked
// for too soon after the last one.
//
// Like a read it is retried on 429, 5xx, network errors and timeouts (asking twice is
// harmless); 401 is [ErrAccessRevoked] and 403 [ErrForbidden], never retried.
func (c *Client) Refresh(ctx context.Context, user Token) error {
	cl := &call{method: http.MethodPost, endpoint: "POST /refresh", path: "/refresh", user: user, want: wantNone}
	if err := checkUser(cl); err != nil {
		return err
	}
	var (
		buf []byte
		env envelope
	)
	return c.do(ctx, cl, &buf, &env)
}

// Accounts returns every account the user shared with the app, following a
// cursor if the server sends one.
func (c *Client) Accounts(ctx context.Context, user Token) ([]Account, error) {
	cl := &call{endpoint: "GET /accounts", path: "/accounts", user: user, want: wantItems}
	if err := checkUser(cl); err != nil {
		return nil, err
	}
	raws, err := c.list(ctx, cl)
	if err != nil {
		return nil, err
	}
	accounts := make([]Account, 0, len(raws))
	s := c.getDecoder()
	defer c.putDecoder(s)
	for i, raw := range raws {
		a, err := decodeAccount(s, raw)
		if err != nil {
			return nil, cl.errorf(ErrMalformed, 200, 0, "", fmt.Errorf("items[%d]: %w", i, err))
		}
		accounts = append(accounts, a)
	}
	return accounts, nil
}

// Pending returns the account's pending transactions (not paginated; a
// cursor is followed if one appears). The items are the objects as served
// and stay valid after the call.
func (c *Client) Pending(ctx context.Context, user Token, accountID string) ([]json.RawMessage, error) {
	cl := &call{
		endpoint:  "GET /accounts/" + accountID + "/transactions/pending",
		path:      "/accounts/" + url.PathEscape(accountID) + "/transactions/pending",
		user:      user,
		accountID: accountID,
		want:      wantItems,
	}
	if err := checkUser(cl); err != nil {
		return nil, err
	}
	if err := checkAccount(cl); err != nil {
		return nil, err
	}
	return c.list(ctx, cl)
}

// Transaction returns one settled transaction of the user by its id (GET
// /transactions/{id}): the item exactly as served, with the date, description
// and other fields Akahu holds for it now. Pipelines use it to tell a
// transaction deleted by the bank from one whose date moved out of the window
// they re-read.
//
// A 404 (the id was deleted, replaced by a new id, never existed, or belongs
// to another user) is an [*Error] unwrapping to [ErrNotFound] whose Endpoint
// names the id. Like every read it is retried on 429, 5xx, network errors,
// timeouts and truncated or malformed bodies; 401 is [ErrAccessRevoked] and
// 403 [ErrForbidden]. An empty id, "." or ".." is [ErrBadRequest] without a
// request. The id is path-escaped. The returned JSON is the caller's.
func (c *Client) Transaction(ctx context.Context, user Token, id string) (json.RawMessage, error) {
	cl := &call{
		endpoint: "GET /transactions/" + id,
		path:     "/transactions/" + url.PathEscape(id),
		user:     user,
		want:     wantItem,
	}
	if err := checkUser(cl); err != nil {
		return nil, err
	}
	switch id {
	case "", ".", "..":
		// A dot segment would name another path once normalised.
		return nil, cl.errorf(ErrBadRequest, 0, 0, "", fmt.Errorf("invalid transaction id %q", id))
	}
	var (
		buf []byte
		env envelope
	)
	if err := c.do(ctx, cl, &buf, &env); err != nil {
		return nil, err
	}
	// env.item aliases buf, which no other call reuses; clip it so an append
	// by the caller cannot write into the rest of the body.
	return slices.Clip(env.item), nil
}

// Transactions walks the account's settled transactions in w (Start
// exclusive, End inclusive), page by page: it sends start and end on every
// request, passes cursor.next back until it is null (through empty pages),
// and calls fn once per page, in order. fn's error stops the walk and is
// returned wrapped. A cursor seen twice is ErrMalformed. Only one page is
// held in memory at a time.
func (c *Client) Transactions(ctx context.Context, user Token, accountID string, w Window, fn func(Page) error) error {
	cl := &call{
		endpoint:  "GET /accounts/" + accountID + "/transactions",
		path:      "/accounts/" + url.PathEscape(accountID) + "/transactions",
		user:      user,
		accountID: accountID,
		window:    w,
		want:      wantItems,
	}
	if err := checkUser(cl); err != nil {
		return err
	}
	if err := checkAccount(cl); err != nil {
		return err
	}
	return c.walk(ctx, cl, w, fn)
}

// AllTransactions walks the settled transactions of every account of the
// user in w (GET /transactions), exactly as Transactions walks one account's:
// same window rules, cursor handling and retries. A page mixes accounts; each
// item's _account says whose it is. One walk over a user's accounts costs as
// many requests as pages, where per-account walks cost at least one each.
func (c *Client) AllTransactions(ctx context.Context, user Token, w Window, fn func(Page) error) error {
	cl := &call{endpoint: "GET /transactions", path: "/transactions", user: user, window: w, want: wantItems}
	if err := checkUser(cl); err != nil {
		return err
	}
	return c.walk(ctx, cl, w, fn)
}

// AllPending returns the pending transactions of every account of the user
// (GET /transactions/pending) in one request: items as served, each with its
// _account, valid after the call.
func (c *Client) AllPending(ctx context.Context, user Token) ([]json.RawMessage, error) {
	cl := &call{endpoint: "GET /transactions/pending", path: "/transactions/pending", user: user, want: wantItems}
	if err := checkUser(cl); err != nil {
		return nil, err
	}
	return c.list(ctx, cl)
}

// walk is the cursor walk of Transactions and AllTransactions.
func (c *Client) walk(ctx context.Context, cl *call, w Window, fn func(Page) error) error {
	if w.Start.IsZero() || w.End.IsZero() || !w.End.After(w.Start) {
		return cl.errorf(ErrBadRequest, 0, 0, "", fmt.Errorf("window must have Start before End"))
	}
	if fn == nil {
		return cl.errorf(ErrBadRequest, 0, 0, "", fmt.Errorf("nil page callback"))
	}
	cl.query = url.Values{
		"start": {w.Start.UTC().Format(TimeFormat)},
		"end":   {w.End.UTC().Format(TimeFormat)},
	}
	scope := "all accounts"
	if cl.accountID != "" {
		scope = "account " + cl.accountID
	}
	var (
		buf  = c.takeBody() // the items of a page are valid only during fn: the buffer is free again after the walk
		env  envelope
		seen = make(map[string]struct{})
	)
	defer func() { c.giveBody(buf) }()
	for index := 0; ; index++ {
		if err := c.do(ctx, cl, &buf, &env); err != nil {
			return err
		}
		c.transactions.Add(int64(len(env.items)))
		if err := fn(Page{Index: index, Items: env.items}); err != nil {
			return fmt.Errorf("akahu: %s (%s, window %s): page %d: %w", cl.endpoint, scope, w, index, err)
		}
		next, err := nextCursor(cl, &env, seen, index)
		if err != nil || next == "" {
			return err
		}
		cl.query.Set("cursor", next)
	}
}

// list fetches a (normally unpaginated) list, following a cursor if one
// appears. Each page gets its own buffer so the items stay valid.
func (c *Client) list(ctx context.Context, cl *call) ([]json.RawMessage, error) {
	var (
		out  []json.RawMessage
		seen = make(map[string]struct{})
	)
	for index := 0; ; index++ {
		var (
			buf []byte
			env envelope
		)
		if err := c.do(ctx, cl, &buf, &env); err != nil {
			return nil, err
		}
		out = append(out, env.items...)
		next, err := nextCursor(cl, &env, seen, index)
		if err != nil {
			return nil, err
		}
		if next == "" {
			return out, nil
		}
		if cl.query == nil {
			cl.query = url.Values{}
		}
		cl.query.Set("cursor", next)
	}
}

// nextCursor returns the cursor to send next, "" when the walk is over, or
// ErrMalformed for a cursor that must not be sent back.
func nextCursor(cl *call, env *envelope, seen map[string]struct{}, index int) (string, error) {
	if !env.hasNext {
		return "", nil
	}
	switch env.next {
	case "", "null":
		return "", cl.errorf(ErrMalformed, 200, 0, "", fmt.Errorf("page %d: cursor.next is %q; refusing to send it back", index, env.next))
	}
	if _, dup := seen[env.next]; dup {
		return "", cl.errorf(ErrMalformed, 200, 0, "", fmt.Errorf("page %d: cursor loop: the server repeated a cursor", index))
	}
	seen[env.next] = struct{}{}
	return env.next, nil
}

func checkUser(cl *call) error {
	if cl.user == "" {
		return cl.errorf(ErrBadRequest, 0, 0, "", fmt.Errorf("empty user token"))
	}
	return nil
}

func checkAccount(cl *call) error {
	if cl.accountID == "" {
		return cl.errorf(ErrBadRequest, 0, 0, "", fmt.Errorf("empty account id"))
	}
	return nil
}
