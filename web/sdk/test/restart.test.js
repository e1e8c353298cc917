// The SDK across a node's restart: it reconnects, resubscribes, tells what
// changed while it was away, and a write whose reply was lost is applied
// exactly once.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startNode } from "../../tallynode.js";
import { login, waitFor } from "./helpers.js";
import { startProxy } from "./proxy.js";

describe("a node that restarts", () => {
  let node, backend;
  before(async () => {
    node = await startNode();
    backend = await node.backend();
  });
  after(async () => {
    await backend?.close();
    await node?.close();
  });

  const value = async (groupID, key) => (await backend.admin("get", { groupID, keyList: [key] })).counters[key];

  test("after a restart (SIGTERM), subscriptions and calls work again", async () => {
    const alice = await login(node, "alice");
    const bob = await login(node, "bob");
    try {
      await alice.chat.setGroupCounters({ groupID: "live", counters: { likes: 1 } });
      await bob.chat.getGroupCounters({ groupID: "live" });
      await node.restart("SIGTERM");
      // bob's subscription is back once his calls are: each reconnects by itself.
      const { data } = await alice.chat.increaseGroupCounter({ groupID: "live", key: "likes", value: 1 });
      assert.equal(data.value, 2);
      await bob.updates.wait((d) => d.groupID === "live" && d.value === 2 && d.seq === 2, 10_000);
      const got = await bob.chat.getGroupCounters({ groupID: "live" });
      assert.deepEqual(got.data.counters, { likes: 2 });
    } finally {
      await alice.chat.logout();
      await bob.chat.logout();
    }
  });

  test("after a reconnect the SDK gets each watched group and tells what changed meanwhile", async () => {
    const proxy = await startProxy(node.wsPort);
    const bob = await login(node, "bob", { servers: proxy.url });
    try {
      await backend.admin("set", { groupID: "away", counters: { a: 1, b: 1 } });
      await bob.chat.getGroupCounters({ groupID: "away" });
      proxy.refuse(); // bob is cut off and cannot come back
      await backend.admin("increase", { groupID: "away", key: "b", value: 4 }); // seq 2: bob misses it
      proxy.pass();
      const u = await bob.updates.wait((d) => d.groupID === "away" && d.key === "b", 10_000);
      assert.deepEqual(u, { groupID: "away", key: "b", value: 5, seq: 2 });
      assert.deepEqual(bob.updates.seen.filter((d) => d.groupID === "away" && d.key === "a"), [], "a did not change");
    } finally {
      await bob.chat.logout();
      await proxy.close();
    }
  });

  test("a write whose reply is lost in a crash is applied exactly once", async () => {
    const proxy = await startProxy(node.wsPort);
    const alice = await login(node, "alice", { servers: proxy.url });
    try {
      await alice.chat.setGroupCounters({ groupID: "once", counters: { k: 100 } });
      proxy.drop(); // the node's replies no longer reach alice
      const write = alice.chat.increaseGroupCounter({ groupID: "once", key: "k", value: 5 });
      await waitFor(async () => (await value("once", "k")) === 105, 5000, "the first attempt applied");
      await node.restart("SIGKILL"); // the node crashes with the reply unsent
      proxy.pass();
      const { data } = await write; // the SDK's retry, with the same requestID
      assert.deepEqual(data, { groupID: "once", key: "k", value: 105 });
      assert.equal(await value("once", "k"), 105, "applied more than once");
    } finally {
      await alice.chat.logout();
      await proxy.close();
    }
  });

  test("a write whose reply is lost is applied exactly once when the connection comes back", async () => {
    const proxy = await startProxy(node.wsPort);
    const alice = await login(node, "alice", { servers: proxy.url });
    try {
      await alice.chat.setGroupCounters({ groupID: "once2", counters: { k: 0 } });
      proxy.drop();
      const write = alice.chat.decreaseGroupCounter({ groupID: "once2", key: "k", value: 3 });
      await waitFor(async () => (await value("once2", "k")) === -3, 5000, "the first attempt applied");
      proxy.refuse();
      proxy.pass();
      const { data } = await write;
      assert.equal(data.value, -3);
      assert.equal(await value("once2", "k"), -3, "applied more than once");
    } finally {
      await alice.chat.logout();
      await proxy.close();
    }
  });
});
