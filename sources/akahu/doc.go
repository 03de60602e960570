// Package akahu is the HTTP client for the Akahu open-finance API
// (https://api.akahu.io/v1) as this project speaks it (see docs/akahu.md).
//
// It owns everything between the pipeline and the wire:
//
//   - authentication: both the user token (Authorization: Bearer …) and the
//     app token (X-Akahu-Id) on every request, held in the [Token] type that
//     never prints its value;
//   - the read endpoints an ETL needs: [Client.Me], [Client.Accounts],
//     [Client.Transactions] (a cursor walk streamed page by page),
//     [Client.Transaction] (one settled transaction by id, to tell a deleted
//     transaction, ErrNotFound, from one whose date moved) and
//     [Client.Pending]; and one write, [Client.Refresh] (POST /refresh: ask Akahu
//     to fetch a user's data from the banks now; [Account].TransactionsRefreshed
//     says when it did);
//   - Akahu's date semantics: [Window] is start-exclusive, end-inclusive to the
//     millisecond, and [LocalDates] turns inclusive local dates into one;
//   - resilience: retries with backoff for 429, 5xx, network errors, timeouts,
//     truncated and malformed bodies (429s within a time budget of their
//     own); a client-wide in-flight limit; a client-wide rate governor
//     (governor.go) that paces every request, starts at the configured budget
//     or unlimited, and finds the API's unpublished rate limit from 429s
//     (AIMD with a cubic climb, see [Config].RequestsPerSecond); counters in
//     [Stats];
//   - errors: every failure is an [*Error] naming endpoint, account and window
//     and unwrapping to one of the sentinels in errors.go, never containing a
//     token. Authentication failures are never retried and are told apart: 401
//     is [ErrAccessRevoked] (the user token is unknown or revoked), 403 is
//     [ErrForbidden] (refused although the user token may be valid: a wrong
//     app token, for every user, or a permission not granted). Only the first
//     says the user withdrew access.
//
// The package never imports the pipeline; the fake server used by tests lives
// in the subpackage akahutest.
package akahu
