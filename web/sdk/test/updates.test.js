// GROUP_COUNTER_UPDATED between users: a group is watched once the app
// calls any method on it, and every change arrives once with its seq.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startNode } from "../../tallynode.js";
import { EVENT } from "../dist/index.js";
import { collect, login, waitFor } from "./helpers.js";
import { startProxy } from "./proxy.js";

describe("GROUP_COUNTER_UPDATED", () => {
  let node, alice, bob, backend;
  before(async () => {
    node = await startNode();
    alice = await login(node, "alice");
    bob = await login(node, "bob");
    backend = await node.backend();
  });
  after(async () => {
    await alice?.chat.logout();
    await bob?.chat.logout();
    await backend?.close();
    await node?.close();
  });

  test("one user's changes reach another who got the group, in seq order, each once", async () => {
    await alice.chat.setGroupCounters({ groupID: "room", counters: { likes: 0, online: 0 } });
    await bob.chat.getGroupCounters({ groupID: "room" }); // bob now watches room
    await alice.chat.increaseGroupCounter({ groupID: "room", key: "likes", value: 3 });
    await alice.chat.increaseGroupCounter({ groupID: "room", key: "online", value: 1 });
    await alice.chat.decreaseGroupCounter({ groupID: "room", key: "likes", value: 1 });
    await alice.chat.setGroupCounters({ groupID: "room", counters: { likes: 10, online: 5 } });
    const last = await bob.updates.wait((d) => d.key === "online" && d.value === 5);
    const got = bob.updates.seen.filter((d) => d.groupID === "room");
    assert.deepEqual(got.map(({ key, value, seq }) => ({ key, value, seq })), [
      { key: "likes", value: 3, seq: 2 },
      { key: "online", value: 1, seq: 3 },
      { key: "likes", value: 2, seq: 4 },
      { key: "likes", value: 10, seq: 5 },
      { key: "online", value: 5, seq: 5 },
    ]);
    assert.equal(last.seq, 5);
  });

  test("a back end's change and delete reach the users who watch the group", async () => {
    await bob.chat.getGroupCounters({ groupID: "shared" });
    await backend.admin("set", { groupID: "shared", counters: { a: 7 } });
    await bob.updates.wait((d) => d.groupID === "shared" && d.key === "a" && d.value === 7 && d.seq === 1);
    await backend.admin("delete", { groupID: "shared", keyList: ["a"] });
    const del = await bob.updates.wait((d) => d.groupID === "shared" && d.deleted);
    assert.deepEqual(del, { groupID: "shared", key: "a", value: 0, seq: 2, deleted: true });
  });

  test("a user who never called a method on a group hears nothing of it", async () => {
    const carol = await login(node, "carol");
    try {
      await alice.chat.increaseGroupCounter({ groupID: "elsewhere", key: "k", value: 1 });
      await carol.chat.increaseGroupCounter({ groupID: "carols", key: "k", value: 1 });
      await carol.updates.wait((d) => d.groupID === "carols");
      await alice.chat.increaseGroupCounter({ groupID: "elsewhere", key: "k", value: 1 });
      await alice.chat.increaseGroupCounter({ groupID: "carols", key: "k", value: 1 });
      await carol.updates.wait((d) => d.groupID === "carols" && d.value === 2);
      assert.deepEqual(carol.updates.seen.filter((d) => d.groupID === "elsewhere"), []);
    } finally {
      await carol.chat.logout();
    }
  });

  // Updates travel on core NATS: one can be lost with the connection up (a
  // proxy that reads the node's NATS messages leaves one out here). The
  // next update's seq shows the gap, and the SDK gets the group and tells
  // the change it missed; the connection stays up, so it is not the
  // refresh after a reconnect.
  test("an update lost on a live connection: the next one's seq gap makes the SDK get the group and tell the missed change", async () => {
    const proxy = await startProxy(node.wsPort, { filter: true });
    const dave = await login(node, "dave", { servers: proxy.url });
    try {
      await backend.admin("set", { groupID: "gap", counters: { a: 1, b: 1 } }); // seq 1
      await dave.chat.getGroupCounters({ groupID: "gap" }); // dave watches gap
      // The watch's own get (its baseline, at seq 1) has reached dave.
      await waitFor(() => proxy.stats.passed.filter((m) => m.subject.startsWith("_INBOX_dave") && m.payload.includes('"groupID":"gap"')).length >= 2,
        5000, "both gets' replies passed");
      proxy.dropMsg((subject, payload) => subject === "tally.v1.updates.gap" && payload.includes('"seq":2'));
      await backend.admin("increase", { groupID: "gap", key: "b", value: 4 }); // seq 2: lost
      await waitFor(() => proxy.stats.dropped.length === 1, 5000, "seq 2's update dropped");
      await backend.admin("increase", { groupID: "gap", key: "a", value: 1 }); // seq 3: a gap of one
      const b = await dave.updates.wait((d) => d.groupID === "gap" && d.key === "b", 5000);
      assert.deepEqual(b, { groupID: "gap", key: "b", value: 5, seq: 3 });
      const a = dave.updates.seen.filter((d) => d.groupID === "gap" && d.key === "a");
      assert.deepEqual(a, [{ groupID: "gap", key: "a", value: 2, seq: 3 }]);
      assert.equal(proxy.stats.connections, 1, "dave's connection stayed up");
      assert.equal(proxy.stats.error, undefined);
    } finally {
      await dave.chat.logout();
      await proxy.close();
    }
  });

  test("a session on a signature of 29 days lasts (timers past 24.8 days fire at once)", async () => {
    const { chat } = await login(node, "longlived");
    const kicked = collect(chat, EVENT.KICKED_OUT);
    const expiring = collect(chat, EVENT.USER_SIG_EXPIRING);
    await chat.renewUserSig(node.mint("longlived", { ttl: 29 * 24 * 3600 }));
    for (let i = 0; i < 3; i++) await chat.getGroupCounters({ groupID: "long" });
    assert.deepEqual([kicked.seen, expiring.seen], [[], []]);
    await chat.logout();
  });
});
