// Every error code of the contract, as the SDK gives it: from the server,
// and from the SDK's own checks, which must give the code the server would.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { tokenAuthenticator, wsconnect } from "@nats-io/nats-core";
import { CODE, TallyError, create } from "../dist/index.js";
import { startNode } from "../../tallynode.js";
import { login, rejection } from "./helpers.js";

describe("error codes", () => {
  let node, alice, backend;
  before(async () => {
    node = await startNode();
    ({ chat: alice } = await login(node, "alice"));
    backend = await node.backend();
  });
  after(async () => {
    await alice?.logout();
    await backend?.close();
    await node?.close();
  });

  test("2996 on the 21st write within 5 s, and nothing changes", async () => {
    const { chat } = await login(node, "rater");
    try {
      for (let i = 1; i <= 20; i++) {
        const { data } = await chat.increaseGroupCounter({ groupID: "rate", key: "k", value: 1 });
        assert.equal(data.value, i);
      }
      const err = await rejection(chat.increaseGroupCounter({ groupID: "rate", key: "k", value: 1 }));
      assert.ok(err instanceof TallyError, `${err}`);
      assert.equal(err.code, 2996);
      assert.equal(typeof err.message, "string");
      const got = await backend.admin("get", { groupID: "rate" });
      assert.deepEqual(got.counters, { k: 20 });
    } finally {
      await chat.logout();
    }
  });

  test("10004 from the server: a 21st key changes nothing", async () => {
    const twenty = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]));
    await backend.admin("set", { groupID: "full", counters: twenty });
    const err = await rejection(alice.increaseGroupCounter({ groupID: "full", key: "k20", value: 1 }));
    assert.equal(err.code, 10004, err.message);
    const got = await backend.admin("get", { groupID: "full" });
    assert.equal(Object.keys(got.counters).length, 20);
  });

  // Each case is sent raw to the server as alice and through the SDK, which
  // refuses it before sending: both must give the same code.
  const hostile = [
    { name: "group ID with a dot", op: "get", body: { groupID: "a.b" }, call: (c) => c.getGroupCounters({ groupID: "a.b" }) },
    { name: "group ID with a wildcard", op: "get", body: { groupID: "a>" }, call: (c) => c.getGroupCounters({ groupID: "a>" }) },
    { name: "group ID of 49 bytes", op: "get", body: { groupID: "g".repeat(49) }, call: (c) => c.getGroupCounters({ groupID: "g".repeat(49) }) },
    { name: "empty group ID", op: "get", body: { groupID: "" }, call: (c) => c.getGroupCounters({ groupID: "" }) },
    { name: "group ID with UTF-8", op: "get", body: { groupID: "grüppe" }, call: (c) => c.getGroupCounters({ groupID: "grüppe" }) },
    { name: "key of 129 bytes", op: "increase", body: { groupID: "g", key: "k".repeat(129), value: 1 }, call: (c) => c.increaseGroupCounter({ groupID: "g", key: "k".repeat(129), value: 1 }) },
    { name: "key of 43 three-byte characters", op: "increase", body: { groupID: "g", key: "€".repeat(43), value: 1 }, call: (c) => c.increaseGroupCounter({ groupID: "g", key: "€".repeat(43), value: 1 }) },
    { name: "empty key", op: "increase", body: { groupID: "g", key: "", value: 1 }, call: (c) => c.increaseGroupCounter({ groupID: "g", key: "", value: 1 }) },
    { name: "key with a newline", op: "set", body: { groupID: "g", counters: { "a\n": 1 } }, call: (c) => c.setGroupCounters({ groupID: "g", counters: { "a\n": 1 } }) },
    { name: "key with a C1 control", op: "set", body: { groupID: "g", counters: { "a\u0085": 1 } }, call: (c) => c.setGroupCounters({ groupID: "g", counters: { "a\u0085": 1 } }) },
    { name: "negative amount", op: "increase", body: { groupID: "g", key: "k", value: -1 }, call: (c) => c.increaseGroupCounter({ groupID: "g", key: "k", value: -1 }) },
    { name: "fractional amount", op: "decrease", body: { groupID: "g", key: "k", value: 1.5 }, call: (c) => c.decreaseGroupCounter({ groupID: "g", key: "k", value: 1.5 }) },
    { name: "amount as a string", op: "increase", body: { groupID: "g", key: "k", value: "2" }, call: (c) => c.increaseGroupCounter({ groupID: "g", key: "k", value: "2" }) },
    { name: "no amount", op: "increase", body: { groupID: "g", key: "k" }, call: (c) => c.increaseGroupCounter({ groupID: "g", key: "k" }) },
    { name: "no counters", op: "set", body: { groupID: "g", counters: {} }, call: (c) => c.setGroupCounters({ groupID: "g", counters: {} }) },
    { name: "21 counters in one set", op: "set", body: { groupID: "g", counters: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 0])) }, call: (c) => c.setGroupCounters({ groupID: "g", counters: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 0])) }) },
    { name: "keyList of 21 keys", op: "get", body: { groupID: "g", keyList: Array.from({ length: 21 }, (_, i) => `k${i}`) }, call: (c) => c.getGroupCounters({ groupID: "g", keyList: Array.from({ length: 21 }, (_, i) => `k${i}`) }) },
  ];

  for (const tc of hostile) {
    test(`the SDK refuses as the server does: ${tc.name}`, async () => {
      const msg = await backend.nc.request(`tally.v1.user.alice.${tc.op}`, JSON.stringify(tc.body), { timeout: 5000 });
      const server = Number(msg.headers?.get("Nats-Service-Error-Code"));
      const err = await rejection(tc.call(alice));
      assert.ok(err instanceof TallyError, `${err}`);
      assert.ok(server === 10004 || server === 10015, `server answered ${msg.string()}`);
      assert.equal(err.code, server, `SDK: ${err.message}; server: ${msg.string()}`);
    });
  }

  // The SDK refuses these before sending, so its tests never see the node
  // refuse them over WebSocket: here a signed-in WebSocket connection as the
  // SDK makes it (alice's signature, her inbox prefix) sends them raw to
  // alice's own subjects, each a bad variant of group wsraw's name or of a
  // good call on it.
  test("10015 and 10004 from the node over WebSocket, past the SDK's checks, change nothing", async () => {
    await backend.admin("set", { groupID: "wsraw", counters: { k: 1 } });
    const nc = await wsconnect({
      servers: node.wsURL,
      authenticator: tokenAuthenticator(() => node.mint("alice")),
      inboxPrefix: "_INBOX_alice",
    });
    try {
      const write = (b) => ({ ...b, requestID: randomUUID() });
      const cases = [
        [10015, /^invalid group ID/, "increase", write({ groupID: "wsraw.x", key: "k", value: 1 })],
        [10015, /^invalid group ID/, "increase", write({ groupID: "wsraw>", key: "k", value: 1 })],
        [10015, /^invalid group ID/, "set", write({ groupID: "wsraw" + "w".repeat(44), counters: { k: 7 } })],
        [10015, /^invalid group ID/, "decrease", write({ groupID: "wsräw", key: "k", value: 1 })],
        [10015, /^invalid group ID/, "get", { groupID: "" }],
        [10004, /^invalid parameter/, "increase", write({ groupID: "wsraw", key: "k", value: "2" })],
        [10004, /^invalid parameter/, "increase", write({ groupID: "wsraw", key: "k", value: -1 })],
        [10004, /^invalid parameter/, "set", write({ groupID: "wsraw", counters: { "k\n": 5 } })],
        [10004, /^invalid parameter/, "set", write({ groupID: "wsraw", counters: { ["k".repeat(129)]: 5 } })],
        [10004, /^invalid parameter/, "get", { groupID: "wsraw", keyList: Array.from({ length: 21 }, (_, i) => `k${i}`) }],
      ];
      for (const [code, text, op, body] of cases) {
        const what = `${op} ${JSON.stringify(body).slice(0, 80)}`;
        const msg = await nc.request(`tally.v1.user.alice.${op}`, JSON.stringify(body), { timeout: 5000 });
        assert.equal(Number(msg.headers?.get("Nats-Service-Error-Code")), code, `${what}: ${msg.string()}`);
        const reply = msg.json();
        assert.equal(reply.code, code, `${what}: ${msg.string()}`);
        assert.match(reply.message, text, what);
        assert.equal(msg.headers.get("Nats-Service-Error"), reply.message, what);
      }
      // The same connection's good call goes through: the refusals were
      // the node's answers to the payloads, not to the connection.
      const ok = await nc.request("tally.v1.user.alice.get", JSON.stringify({ groupID: "wsraw" }), { timeout: 5000 });
      assert.deepEqual(ok.json().counters, { k: 1 }, ok.string());
    } finally {
      await nc.close();
    }
    const got = await backend.admin("get", { groupID: "wsraw" });
    assert.deepEqual(got, { groupID: "wsraw", counters: { k: 1 }, seq: 1 });
    const h = await backend.admin("history", { groupID: "wsraw" });
    assert.deepEqual(h.entries.map((e) => e.seq), [1], "only the back end's set is in wsraw's journal");
  });

  test("10004 for a signature of another user, an expired one or none, before connecting", async () => {
    const chat = create({ servers: node.wsURL });
    for (const userSig of [node.mint("bob"), node.mint("alice", { ttl: -10 }), "", "a.b.c", "x".repeat(2000)]) {
      const err = await rejection(chat.login({ userID: "alice", userSig }));
      assert.equal(err.code, CODE.INVALID_PARAMETER, `${userSig.slice(0, 40)}: ${err.message}`);
    }
    for (const userID of ["", "a.b", "u".repeat(33), "a b"]) {
      const err = await rejection(chat.login({ userID, userSig: node.mint("alice") }));
      assert.equal(err.code, 10004, `${userID}: ${err.message}`);
    }
  });

  test("create refuses a refusedFor that is not a number of ms, 0 or more", () => {
    for (const refusedFor of [-1, NaN, "20000", null]) {
      assert.throws(() => create({ servers: node.wsURL, refusedFor }), (err) => err.code === 10004, String(refusedFor));
    }
    for (const refusedFor of [0, 20_000, Infinity]) create({ servers: node.wsURL, refusedFor });
  });

  test("a call before login is refused", async () => {
    const chat = create({ servers: node.wsURL });
    const err = await rejection(chat.getGroupCounters({ groupID: "g" }));
    assert.equal(err.code, 10004);
    assert.match(err.message, /login/);
  });
});
