// Package akahutest provides a fake Akahu API for tests, benchmarks and the
// demo, in the spirit of net/http/httptest.
//
// The package owns the fake server only: a deterministic synthetic population
// of users, accounts, settled and pending transactions derived from
// Options.Seed, optionally mixing quiet and busy accounts (Options.DenseEvery:
// every n-th account by global index is drawn at DenseTxPerAccountPerMonth, the
// others at TxPerAccountPerMonth, as fleets of real users are); the HTTP surface under /v1 (GET /me, /accounts,
// /accounts/{id}, /accounts/{id}/transactions, /transactions,
// /transactions/{id}, /accounts/{id}/transactions/pending,
// /transactions/pending and POST /refresh, /refresh/{id}); ground-truth accessors (Users, AccountIDs,
// Settled, Pending, TotalSettled, CountSettled, SumSettled); scripted changes (add, delete,
// replace id, move date, change description, settle pending, revoke user,
// forbid user; refreshes with a delay, stalled or failing);
// scripted faults (rate limits, 5xx, truncated and malformed bodies,
// connection resets, slow answers, latency) with request statistics; and an
// API rate limit (SetRateLimit: a token bucket shared by every request,
// answering 429 without Retry-After beyond it, counted in Stats).
//
// It deliberately imports nothing of this module, so the Akahu client in
// sources/akahu can be tested against it without an import cycle.
//
// # Behaviour, as in docs/akahu.md
//
//   - Both X-Akahu-Id (the app token) and Authorization: Bearer (a user token)
//     are required. A missing or wrong app token answers 403 for every user; a
//     missing, unknown or revoked user token answers 401; a user made
//     forbidden (ForbidUser) answers 403 alone; an unknown account, or one of
//     another user, answers 404; an unknown path 404; a wrong method 405. Every
//     error body is {"success":false,"message":"..."}.
//   - GET /transactions/{id} answers {"success":true,"item":Transaction} with
//     the settled transaction exactly as the pages serve it now (a moved one
//     with its new date, a replaced one under its new id only), and 404 when
//     the id does not exist (deleted, replaced, never existed, pending) or
//     belongs to another user.
//   - Settled transactions are paginated: PageSize items per page, newest
//     "date" first, ties broken by ascending _id. The cursor is opaque
//     standard base64 (it contains '+', '/' and '=', so clients must
//     URL-escape it) binding the page number, the offset and a fingerprint of
//     the scope and the start/end window. A cursor sent with another
//     window or scope, the string "null", an empty or undecodable cursor all
//     answer 400. Every EmptyPageEvery-th page is empty with a non-null next;
//     the last page has "next": null.
//   - start is exclusive and end inclusive, to the millisecond. Both accept
//     ISO 8601 dates (UTC midnight) and date-times with Z, an offset, or
//     none (UTC assumed); sub-millisecond digits are truncated; anything else
//     answers 400. When start or end is missing the fake applies the SDK's
//     "last 30 days" default: end defaults to the last millisecond of the local
//     day of Options.To, start to end minus 30 days. Clients must not rely on it.
//   - Accounts without the TRANSACTIONS attribute answer 200 with no items
//     (and "next": null) on their transaction and pending endpoints: the
//     account guides say only that such accounts have no transactions, and
//     reserve 403 for authorisation problems.
//   - INACTIVE accounts serve their cached data like ACTIVE ones.
//   - The settled "date" is local midnight in Pacific/Auckland rendered in UTC
//     with milliseconds; amounts and balances are JSON number text rendered
//     from integer cents; pending amounts are sometimes JSON strings.
//   - POST /refresh (every account of the user) and /refresh/{id} (one account)
//     answer {"success":true} at once; RefreshDelay (SetRefreshDelay) later the
//     accounts' refreshed.balance, .meta and .transactions become the time the
//     refresh completed, newer than before. StallRefresh makes chosen accounts
//     never complete, FailRefresh makes a user's refresh answer 5xx, and
//     OnRefreshed runs a hook (e.g. adding what the bank had) as each completes.
//   - Unknown query parameters are ignored.
//
// # Use
//
// Tests call NewServer, which listens on 127.0.0.1 and whose URL already ends
// in /v1. A Fake is itself an http.Handler for paths starting with /v1/, so a
// demo can serve it on its own loopback listener:
//
//	f := akahutest.New(akahutest.Options{Seed: 1})
//	go http.Serve(ln, f) // base URL: "http://" + ln.Addr().String() + "/v1"
//
// Settled transactions are not stored: each is generated from its position
// (account, local day, index), and its id encodes that position, so a
// population of millions costs a few MiB (see BenchmarkNewLarge). An account
// keeps only its days with transactions (a quiet one a few hundred bytes) and
// its rendered account object (about a KiB), so a fleet of 20,000 users with
// three accounts each, every 10th of them busy, is built in a few seconds and
// holds about 130 MiB (see BenchmarkNewFleet). Scripted changes are kept as a
// small overlay.
//
// Pagination is offset based, so a mutation between two pages of one walk may
// shift items across the page boundary, as with any offset cursor; mutations
// are guaranteed visible to the next walk.
package akahutest
