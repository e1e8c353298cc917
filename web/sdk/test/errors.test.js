// Every error code of the contract, as the SDK gives it: from the server,
// and from the SDK's own checks, which must give the code the server would.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
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

  test("a call before login is refused", async () => {
    const chat = create({ servers: node.wsURL });
    const err = await rejection(chat.getGroupCounters({ groupID: "g" }));
    assert.equal(err.code, 10004);
    assert.match(err.message, /login/);
  });
});
