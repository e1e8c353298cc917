// Sign-in with a user signature: the node verifies it (Ed25519 JWT, see
// tallynode.js's mintUserSig), the SDK asks for a fresh one before it
// expires and tells the app when the session ends.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { CODE, EVENT, KICKED_OUT_TYPE, create } from "../dist/index.js";
import { binary, mintUserSig, newUserSigKeys, startNode } from "../../tallynode.js";
import { PATIENT, collect, login, rejection, waitFor } from "./helpers.js";
import { startProxy } from "./proxy.js";

describe("sign-in", () => {
  let node;
  before(async () => {
    node = await startNode();
  });
  after(async () => {
    await node?.close();
  });

  const refused = [
    ["signed with another key", () => mintUserSig(newUserSigKeys().privateKey, "alice")],
    ["with its claims changed after signing", () => {
      const [h, , s] = node.mint("bob").split(".");
      const body = Buffer.from(JSON.stringify({ sub: "alice", aud: "tally", iat: 1, exp: 4102444800 })).toString("base64url");
      return `${h}.${body}.${s}`;
    }],
    ["for another audience", () => node.mint("alice", { claims: { aud: "elsewhere" } })],
    ["with a lifetime over 30 days", () => node.mint("alice", { ttl: 31 * 24 * 3600 })],
    ["with alg none", () => {
      const [, b] = node.mint("alice").split(".");
      return `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${b}.`;
    }],
  ];
  for (const [name, sig] of refused) {
    test(`a signature ${name} is refused: 10007`, async () => {
      const chat = create({ servers: node.wsURL, connectOptions: { reconnectTimeWait: 100 } });
      const err = await rejection(chat.login({ userID: "alice", userSig: sig() }));
      assert.equal(err.code, CODE.NOT_ALLOWED, err.message);
    });
  }

  test("keys and signatures of tally-node usersig work with the SDK, and the SDK's minting with the node", async () => {
    const run = promisify(execFile);
    const bin = await binary();
    const dir = mkdtempSync(join(tmpdir(), "usersig-"));
    await run(bin, ["usersig", "keygen", "--out", dir]);
    const privatePem = readFileSync(join(dir, "user-sig.key"), "utf8");
    const keys = { publicPem: readFileSync(join(dir, "user-sig.pub"), "utf8"), privatePem, privateKey: createPrivateKey(privatePem) };
    const other = await startNode({ keys });
    try {
      const { stdout } = await run(bin, ["usersig", "--key", join(dir, "user-sig.key"), "--user", "cli", "--ttl", "1h"]);
      for (const userSig of [stdout.trim(), other.mint("cli")]) {
        const chat = create({ servers: other.wsURL });
        await chat.login({ userID: "cli", userSig });
        const { data } = await chat.getGroupCounters({ groupID: "cli" });
        assert.deepEqual(data.counters, {});
        await chat.logout();
      }
    } finally {
      await other.close();
    }
  });

  test("a signed-in user acts as the signature's user", async () => {
    const { chat } = await login(node, "alice");
    try {
      await chat.increaseGroupCounter({ groupID: "who", key: "k", value: 1 });
      const backend = await node.backend();
      const h = await backend.admin("history", { groupID: "who" });
      assert.equal(h.entries[0].user, "alice");
      await backend.close();
    } finally {
      await chat.logout();
    }
  });

  // The app renews as the seed's apps do: a listener of USER_SIG_EXPIRING
  // gets a fresh signature from the back end and hands it over. Past the
  // first signature's expiry (which the node holds the connection to) the
  // session still calls and hears updates, and after its connection is cut
  // it signs in again with the fresh signature, not the expired one.
  test("USER_SIG_EXPIRING asks for a fresh signature, which the session signs in with past the first one's expiry", async () => {
    const proxy = await startProxy(node.wsPort);
    const chat = create({ servers: proxy.url, timeout: 2000, connectOptions: { reconnectTimeWait: 100 } });
    const updates = collect(chat, EVENT.GROUP_COUNTER_UPDATED);
    const kicked = collect(chat, EVENT.KICKED_OUT);
    const renewals = [];
    chat.on(EVENT.USER_SIG_EXPIRING, (e) => {
      renewals.push(e.data);
      chat.renewUserSig(node.mint("renewer", { ttl: 3600 })).catch((err) => renewals.push(err));
    });
    const first = node.mint("renewer", { ttl: 4 });
    const firstExpiry = JSON.parse(Buffer.from(first.split(".")[1], "base64url")).exp * 1000;
    const backend = await node.backend();
    await chat.login({ userID: "renewer", userSig: first });
    try {
      await chat.getGroupCounters({ groupID: "renewed" }); // the session watches renewed
      await waitFor(() => Date.now() > firstExpiry + 1000, 10_000, "the first signature's expiry passed");
      assert.deepEqual(renewals, [{ userID: "renewer", expiresAt: firstExpiry }], "one renewal, of the first signature");
      const { data } = await chat.increaseGroupCounter({ groupID: "renewed", key: "k", value: 1 });
      assert.equal(data.value, 1);
      await backend.admin("increase", { groupID: "renewed", key: "k", value: 10 });
      await updates.wait((d) => d.groupID === "renewed" && d.value === 11 && d.seq === 2);
      // Cut the connection: the SDK signs in again, with the fresh signature.
      const before = proxy.stats.connections;
      proxy.refuse();
      proxy.pass();
      await waitFor(() => proxy.stats.connections > before, 10_000, "the SDK connected again");
      assert.equal((await chat.increaseGroupCounter({ groupID: "renewed", key: "k", value: 1 })).data.value, 12);
      await backend.admin("increase", { groupID: "renewed", key: "k", value: 100 });
      await updates.wait((d) => d.groupID === "renewed" && d.value === 112 && d.seq === 4);
      assert.deepEqual(kicked.seen, []);
      assert.equal(renewals.length, 1);
    } finally {
      await chat.logout();
      await backend.close();
      await proxy.close();
    }
  });

  test("a signature that expires ends the session with KICKED_OUT (expired)", async () => {
    const chat = create({ servers: node.wsURL, timeout: 1000, connectOptions: { reconnectTimeWait: 100 } });
    const kicked = collect(chat, EVENT.KICKED_OUT);
    await chat.login({ userID: "expirer", userSig: node.mint("expirer", { ttl: 2 }) });
    const { type } = await kicked.wait(() => true, 6000);
    assert.equal(type, KICKED_OUT_TYPE.USERSIG_EXPIRED);
    const err = await rejection(chat.getGroupCounters({ groupID: "g" }));
    assert.match(err.message, /login/);
  });

  test("a node that refuses the signature for a few seconds does not end the session", async () => {
    // However long the restarts take, the refusals last less than refusedFor.
    const { chat, updates } = await login(node, "patient", { refusedFor: PATIENT });
    const kicked = collect(chat, EVENT.KICKED_OUT);
    await chat.getGroupCounters({ groupID: "patience" }); // the session watches patience
    const keys = node.keys;
    node.keys = newUserSigKeys(); // the node restarts with another key: it refuses the signature
    await node.stop();
    await node.prepare();
    const from = node.stderr.length;
    await node.start();
    const refusals = () => node.stderr.slice(from).split("authentication error").length - 1;
    await waitFor(() => refusals() >= 3, 10_000, "the node refused the SDK's sign-in three times");
    node.keys = keys; // and again with its key
    await node.stop();
    await node.prepare();
    await node.start();
    try {
      const { data } = await chat.increaseGroupCounter({ groupID: "patience", key: "k", value: 1 });
      assert.equal(data.value, 1);
      await updates.wait((d) => d.groupID === "patience" && d.value === 1 && d.seq === 1);
      assert.deepEqual(kicked.seen, []);
    } finally {
      await chat.logout();
    }
  });

  test("a node that no longer takes the signature ends the session with KICKED_OUT (auth refused)", async () => {
    // Refusals end the session once there have been three in a row, over
    // refusedFor: short here, so that the wait below is for the refusals
    // alone (the default, 20 s, would outlast it).
    const { chat } = await login(node, "rekeyed", { refusedFor: 500 });
    const kicked = collect(chat, EVENT.KICKED_OUT);
    try {
      await chat.getGroupCounters({ groupID: "g" });
      node.keys = newUserSigKeys(); // the node restarts with another key
      await node.stop();
      await node.prepare();
      await node.start();
      const { type } = await kicked.wait(() => true, 10_000);
      assert.equal(type, KICKED_OUT_TYPE.AUTH_REFUSED);
    } finally {
      await chat.logout(); // the session, when the refusals did not end it, would reconnect on
    }
  });
});
