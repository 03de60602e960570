// The official Akahu JavaScript SDK (npm "akahu", pinned to 2.5.1) as an
// independent second client of the fake Akahu API (sources/akahu/akahutest).
//
// Run by sdk_test.go, which starts the fake and writes the expectation from
// the fake's ground-truth accessors. Environment:
//   FAKE_AKAHU_URL            base URL including /v1, e.g. http://127.0.0.1:PORT/v1
//   FAKE_AKAHU_APP_TOKEN      the X-Akahu-Id the fake accepts
//   FAKE_AKAHU_USER_TOKENS    comma-separated live user tokens, in the order of expect.users
//   FAKE_AKAHU_REVOKED_TOKENS comma-separated revoked user tokens (optional)
//   FAKE_AKAHU_EXPECT         path of the expectation JSON
//
// Only node:test and node:assert besides the SDK itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AkahuClient } from "akahu";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run via tests/sdk/sdk_test.go)`);
  return v;
};
const baseURL = env("FAKE_AKAHU_URL");
const appToken = env("FAKE_AKAHU_APP_TOKEN");
const tokens = env("FAKE_AKAHU_USER_TOKENS").split(",").filter(Boolean);
const revokedTokens = (process.env.FAKE_AKAHU_REVOKED_TOKENS ?? "").split(",").filter(Boolean);
const expect = JSON.parse(readFileSync(env("FAKE_AKAHU_EXPECT"), "utf8"));
assert.equal(tokens.length, expect.users.length, "one token per expected user");

// Pointing the SDK at another server. AkahuClient (dist/index.mjs, 2.5.1) has
// no URL option: its constructor takes `protocol` (default "https"), `host`
// (default "api.akahu.io"), `port` (default none) and `apiVersion` (default
// "v1", the only value its types allow) and builds axios' baseURL as
//   `${protocol}://${host}${port ? ":" + port : ""}/${apiVersion}`
// Every resource path ("/me", "/transactions", ...) is appended to it. So the
// fake's base URL must be <origin>/v1 exactly; other keys of the config are
// filtered down to headers, timeout, proxy, retries and adapter. The SDK also
// insists that appToken starts with "app_token_".
function sdkConfig(url) {
  const u = new URL(url);
  const apiVersion = u.pathname.replace(/^\/+|\/+$/g, "");
  assert.equal(apiVersion, "v1", `the SDK can only reach <origin>/v1, not ${url}`);
  return {
    protocol: u.protocol.replace(/:$/, ""), // "http" for the loopback fake
    host: u.hostname,
    port: u.port ? Number(u.port) : undefined,
    apiVersion,
    timeout: 30_000,
  };
}
const client = new AkahuClient({ appToken, ...sdkConfig(baseURL) });

const UTC_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const DECIMAL = /^-?\d+(\.\d{1,2})?$/;
const startMs = Date.parse(expect.start);
const endMs = Date.parse(expect.end);

function assertUTCDate(v, what) {
  assert.equal(typeof v, "string", `${what} is a string`);
  assert.match(v, UTC_MS, `${what} is UTC with milliseconds: ${v}`);
  assert.ok(!Number.isNaN(Date.parse(v)), `${what} parses: ${v}`);
}

// Exact cents of a decimal string ("-12.5" -> -1250n).
function centsOf(s) {
  assert.match(s, DECIMAL, `decimal ${s}`);
  const neg = s.startsWith("-");
  const [i, f = ""] = s.replace(/^-/, "").split(".");
  const c = BigInt(i) * 100n + BigInt((f + "00").slice(0, 2));
  return neg ? -c : c;
}

function checkSettled(tx, accountIds, userId) {
  const what = `transaction ${tx._id}`;
  assert.match(tx._id, /^trans_/, `${what}: _id`);
  assert.equal(tx._user, userId, `${what}: _user`);
  assert.ok(accountIds.has(tx._account), `${what}: _account ${tx._account} belongs to the user`);
  assert.equal(typeof tx._connection, "string", `${what}: _connection`);
  for (const k of ["date", "created_at", "updated_at"]) assertUTCDate(tx[k], `${what}: ${k}`);
  const d = Date.parse(tx.date);
  assert.ok(d > startMs && d <= endMs, `${what}: date ${tx.date} in (${expect.start}, ${expect.end}]`);
  assert.equal(typeof tx.amount, "number", `${what}: amount is a number`);
  assert.ok(Number.isFinite(tx.amount), `${what}: amount is finite`);
  if ("balance" in tx) assert.equal(typeof tx.balance, "number", `${what}: balance is a number`);
  assert.equal(typeof tx.description, "string", `${what}: description`);
  assert.equal(typeof tx.type, "string", `${what}: type`);
}

function checkPending(p, accountIds, userId) {
  assert.ok(!("_id" in p), "pending transactions have no _id");
  assert.equal(p._user, userId);
  assert.ok(accountIds.has(p._account), `pending _account ${p._account} belongs to the user`);
  assertUTCDate(p.date, "pending date");
  assertUTCDate(p.updated_at, "pending updated_at");
  if (typeof p.amount === "string") {
    assert.match(p.amount, DECIMAL, `pending string amount ${p.amount}`);
  } else {
    assert.equal(typeof p.amount, "number", "pending amount is a number or a decimal string");
  }
}

// Walks every page through cursor.next until it is null, through empty pages.
async function walk(fetchPage, what) {
  const items = [];
  const pages = [];
  let cursor; // undefined on the first request: the SDK omits it
  for (let i = 0; ; i++) {
    assert.ok(i < 10_000, `${what}: runaway pagination`);
    const page = await fetchPage(cursor);
    assert.ok(Array.isArray(page.items), `${what}: page ${i + 1} has items`);
    assert.ok(page.cursor && "next" in page.cursor, `${what}: page ${i + 1} has cursor.next`);
    assert.ok(page.items.length <= expect.page_size, `${what}: page ${i + 1} holds at most ${expect.page_size}`);
    pages.push({ n: page.items.length, next: page.cursor.next });
    items.push(...page.items);
    if (page.cursor.next === null) break;
    assert.equal(typeof page.cursor.next, "string", `${what}: next is a string or null`);
    cursor = page.cursor.next;
    // The fake's cursors are standard base64: '+', '/' and '=' must survive
    // the SDK's query encoding (axios' params serialiser) on the next request.
    if (/[+/]/.test(cursor)) cursorsNeedingEscape++;
  }
  return { items, pages };
}

function assertNewestFirst(items, what) {
  for (let i = 1; i < items.length; i++) {
    const a = Date.parse(items[i - 1].date), b = Date.parse(items[i].date);
    assert.ok(a > b || (a === b && items[i - 1]._id < items[i]._id),
      `${what}: newest date first, ties by ascending _id (${items[i - 1]._id}, ${items[i]._id})`);
  }
}

async function rejectsWithStatus(promise, status, what) {
  await assert.rejects(promise, (err) => {
    // The SDK's runtime exports only AkahuClient; its AkahuErrorResponse (an
    // Error whose name stays "Error") is recognised by isAkahuError + response.
    assert.equal(err.isAkahuError, true, `${what}: an Akahu SDK error, got ${err.name}: ${err.message}`);
    assert.ok(err.response, `${what}: an error response (AkahuErrorResponse), not a network error`);
    assert.equal(err.status, status, `${what}: status`);
    assert.equal(typeof err.message, "string");
    assert.ok(err.message.length > 0, `${what}: the body's message`);
    assert.equal(err.response?.data?.success, false, `${what}: body has success:false`);
    return true;
  });
}

test("the SDK is pointed at the fake", () => {
  assert.equal(client.axios.defaults.baseURL, baseURL.replace(/\/+$/, ""));
});

let sawEmptyPage = false;
let cursorsNeedingEscape = 0;
let pendingStrings = 0, pendingNumbers = 0;

for (const [ui, eu] of expect.users.entries()) {
  const token = tokens[ui];
  const accountIds = new Set(eu.accounts.map((a) => a.id));

  test(`user ${ui + 1}`, async (t) => {
    await t.test("users.get: GET /me", async () => {
      const me = await client.users.get(token);
      assert.equal(me._id, eu.id);
      assert.equal(me.email, eu.email);
      assertUTCDate(me.access_granted_at, "access_granted_at");
    });

    await t.test("accounts.list and accounts.get", async () => {
      const accounts = await client.accounts.list(token);
      assert.ok(Array.isArray(accounts));
      assert.deepEqual(accounts.map((a) => a._id), eu.accounts.map((a) => a.id));
      for (const [i, a] of accounts.entries()) {
        const ea = eu.accounts[i];
        assert.equal(a.type, ea.type, `${a._id} type`);
        assert.equal(a.status, ea.status, `${a._id} status`);
        assert.ok(Array.isArray(a.attributes), `${a._id} attributes`);
        assert.equal(a.attributes.includes("TRANSACTIONS"), ea.has_transactions, `${a._id} TRANSACTIONS attribute`);
        assert.equal(typeof a.name, "string");
        assert.equal(typeof a.connection?._id, "string", `${a._id} connection._id`);
        if (a.balance) assert.equal(typeof a.balance.current, "number", `${a._id} balance.current`);
        assert.deepEqual(await client.accounts.get(token, a._id), a, `accounts.get(${a._id}) equals the listed account`);
      }
    });

    await t.test("transactions.list: GET /transactions walked to next=null", async (st) => {
      const { items, pages } = await walk(
        (cursor) => client.transactions.list(token, { start: expect.start, end: expect.end, cursor }),
        "GET /transactions");
      const empties = pages.filter((p) => p.n === 0 && p.next !== null).length;
      if (empties > 0) sawEmptyPage = true;
      assert.deepEqual(items.map((x) => x._id), eu.settled, "ids, in served order");
      assert.equal(new Set(items.map((x) => x._id)).size, items.length, "no duplicates");
      for (const tx of items) checkSettled(tx, accountIds, eu.id);
      assertNewestFirst(items, "GET /transactions");
      if (expect.empty_page_every > 0 && pages.length >= expect.empty_page_every) {
        assert.ok(empties > 0, `${pages.length} pages but no empty page with a non-null next`);
      }
      st.diagnostic(`user ${ui + 1}: ${items.length} transactions in ${pages.length} pages (${empties} empty)`);
    });

    await t.test("accounts.listTransactions: GET /accounts/{id}/transactions per account", async () => {
      for (const ea of eu.accounts) {
        const { items } = await walk(
          (cursor) => client.accounts.listTransactions(token, ea.id, { start: expect.start, end: expect.end, cursor }),
          `GET /accounts/${ea.id}/transactions`);
        assert.deepEqual(items.map((x) => x._id), ea.settled, `${ea.id}: ids, in served order`);
        for (const tx of items) {
          checkSettled(tx, accountIds, eu.id);
          assert.equal(tx._account, ea.id);
        }
        assertNewestFirst(items, ea.id);
        const sum = items.reduce((s, x) => s + BigInt(Math.round(x.amount * 100)), 0n);
        assert.equal(sum, centsOf(ea.settled_sum), `${ea.id}: sum of amounts`);
        if (ea.settled_items) {
          assert.deepEqual(items, ea.settled_items, `${ea.id}: every field as the fake's ground truth`);
        }
        if (!ea.has_transactions) assert.equal(items.length, 0, `${ea.id} has no TRANSACTIONS attribute`);
        // The window's edges: exclusive start, inclusive end.
        const atStart = items.filter((x) => Date.parse(x.date) === startMs).length;
        const atEnd = items.filter((x) => Date.parse(x.date) === endMs).length;
        assert.equal(atStart, 0, `${ea.id}: start is exclusive`);
        assert.equal(atEnd, ea.boundary_end_n, `${ea.id}: end is inclusive`);
      }
    });

    await t.test("transactions.listPending and accounts.listPendingTransactions", async () => {
      const all = await client.transactions.listPending(token);
      assert.ok(Array.isArray(all), "GET /transactions/pending is not paginated: an array");
      assert.deepEqual(all, eu.accounts.flatMap((a) => a.pending), "every pending item as the fake serves it");
      for (const p of all) {
        checkPending(p, accountIds, eu.id);
        if (typeof p.amount === "string") pendingStrings++; else pendingNumbers++;
      }
      for (const ea of eu.accounts) {
        const one = await client.accounts.listPendingTransactions(token, ea.id);
        assert.ok(Array.isArray(one));
        assert.deepEqual(one, ea.pending, `${ea.id}: pending`);
        if (!ea.has_transactions) assert.equal(one.length, 0);
      }
    });

    await t.test("accounts.refreshAll and accounts.refresh: POST /refresh[/{id}]", async () => {
      assert.equal(await client.accounts.refreshAll(token), undefined);
      assert.equal(await client.accounts.refresh(token, eu.accounts[0].id), undefined);
    });
  });
}

test("errors reach the SDK as AkahuErrorResponse with the right status", async (t) => {
  const token = tokens[0];
  const window = { start: expect.start, end: expect.end };

  await t.test("revoked and unknown user tokens: 401", async () => {
    for (const revoked of revokedTokens) {
      await rejectsWithStatus(client.users.get(revoked), 401, "revoked token, GET /me");
      await rejectsWithStatus(client.accounts.list(revoked), 401, "revoked token, GET /accounts");
      await rejectsWithStatus(client.transactions.list(revoked, window), 401, "revoked token, GET /transactions");
      await rejectsWithStatus(client.transactions.listPending(revoked), 401, "revoked token, GET /transactions/pending");
    }
    await rejectsWithStatus(client.users.get("user_token_notarealtoken"), 401, "unknown token");
    await rejectsWithStatus(client.transactions.list("user_token_notarealtoken", window), 401, "unknown token");
  });

  await t.test("wrong app token: 403", async () => {
    const other = new AkahuClient({ appToken: "app_token_notthefakesone", ...sdkConfig(baseURL) });
    await rejectsWithStatus(other.users.get(token), 403, "wrong X-Akahu-Id");
  });

  await t.test("unknown account, or another user's: 404", async () => {
    await rejectsWithStatus(client.accounts.get(token, "acc_doesnotexist000000000"), 404, "unknown account");
    await rejectsWithStatus(client.accounts.listTransactions(token, "acc_doesnotexist000000000", window), 404, "unknown account transactions");
    if (expect.users.length > 1) {
      const theirs = expect.users[1].accounts[0].id;
      await rejectsWithStatus(client.accounts.get(token, theirs), 404, "another user's account");
      await rejectsWithStatus(client.accounts.listPendingTransactions(token, theirs), 404, "another user's pending");
    }
  });

  await t.test("bad cursors: 400; a null cursor is refused by the SDK itself", async () => {
    const first = await client.transactions.list(token, window);
    assert.equal(typeof first.cursor.next, "string", "the window has more than one page");
    await rejectsWithStatus(client.transactions.list(token, { ...window, cursor: "null" }), 400, 'the string "null"');
    await rejectsWithStatus(
      client.transactions.list(token, { start: expect.start, end: "2026-10-15T00:00:00.000Z", cursor: first.cursor.next }),
      400, "a cursor sent with another window");
    await rejectsWithStatus(
      client.accounts.listTransactions(token, expect.users[0].accounts[0].id, { ...window, cursor: first.cursor.next }),
      400, "a cursor sent with another scope");
    await assert.rejects(client.transactions.list(token, { ...window, cursor: null }), /cursor cannot be null/);
  });

  await t.test("malformed start: 400", async () => {
    await rejectsWithStatus(client.transactions.list(token, { start: "yesterday", end: expect.end }), 400, "start=yesterday");
  });
});

test("transactions.get: GET /transactions/{id}", async (t) => {
  await t.test("an existing id returns the transaction exactly as listed", async () => {
    let n = 0;
    for (const [ui, eu] of expect.users.entries()) {
      const accountIds = new Set(eu.accounts.map((a) => a.id));
      for (const ea of eu.accounts) {
        if (ea.settled.length === 0) continue;
        // The first, the last and one in the middle of the window.
        const picks = [...new Set([0, ea.settled.length >> 1, ea.settled.length - 1])];
        for (const i of picks) {
          const id = ea.settled[i];
          const tx = await client.transactions.get(tokens[ui], id);
          assert.equal(tx._id, id);
          assert.equal(tx._account, ea.id, `${id}: _account`);
          checkSettled(tx, accountIds, eu.id);
          if (ea.settled_items) {
            assert.deepEqual(tx, ea.settled_items[i], `${id}: every field as the list serves it`);
          }
          n++;
        }
      }
    }
    assert.ok(n > 0, "some transaction was fetched by id");
  });

  // The fake cannot be told from here to delete a transaction; to the API a
  // deleted id is one that does not exist (the Go tests delete, replace and
  // move transactions and check GET /transactions/{id} follows).
  await t.test("an unknown id, or another user's, throws with status 404", async () => {
    const token = tokens[0];
    await rejectsWithStatus(client.transactions.get(token, "trans_doesnotexist0000000000000"), 404, "unknown transaction id");
    const mine = expect.users[0].accounts.find((a) => a.settled.length > 0).settled[0];
    await rejectsWithStatus(client.transactions.get(token, mine.slice(0, -1) + (mine.endsWith("0") ? "1" : "0")), 404,
      "one character off a real id");
    if (expect.users.length > 1) {
      const theirs = expect.users[1].accounts.find((a) => a.settled.length > 0);
      if (theirs) await rejectsWithStatus(client.transactions.get(token, theirs.settled[0]), 404, "another user's transaction");
    }
  });

  await t.test("revoked token: 401; wrong app token: 403", async () => {
    const id = expect.users[0].accounts.find((a) => a.settled.length > 0).settled[0];
    for (const revoked of revokedTokens) {
      await rejectsWithStatus(client.transactions.get(revoked, id), 401, "revoked token, GET /transactions/{id}");
    }
    const other = new AkahuClient({ appToken: "app_token_notthefakesone", ...sdkConfig(baseURL) });
    await rejectsWithStatus(other.transactions.get(tokens[0], id), 403, "wrong X-Akahu-Id, GET /transactions/{id}");
  });
});

// SDK methods an ETL does not need and the fake does not serve (it routes
// POST /transactions/ids as GET /transactions/{id} with the wrong method and
// answers 405). Marked todo: they report but do not fail the run; they start
// passing if the fake ever serves them.
test("transactions.getMany: POST /transactions/ids", { todo: "not served by the fake (405)" }, async () => {
  const ea = expect.users[0].accounts.find((a) => a.settled.length > 1);
  const txs = await client.transactions.getMany(tokens[0], ea.settled.slice(0, 2));
  assert.deepEqual(txs.map((x) => x._id).sort(), ea.settled.slice(0, 2).sort());
});

test("the fake exercised what it should", (t) => {
  assert.ok(sawEmptyPage, "some walk went through an empty page with a non-null next");
  assert.ok(cursorsNeedingEscape > 0, "some cursor sent back held '+' or '/'");
  t.diagnostic(`cursors sent back holding '+' or '/': ${cursorsNeedingEscape}`);
  // The fake serves pending amounts sometimes as JSON strings; report the mix.
  t.diagnostic(`pending amounts: ${pendingNumbers} numbers, ${pendingStrings} strings`);
});
