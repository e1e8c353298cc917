// Members-only groups: a non-member's calls get 10007 and change nothing,
// and only members hear the group's updates.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { TallyError } from "../dist/index.js";
import { startNode } from "../../tallynode.js";
import { login, rejection } from "./helpers.js";

let node, backend;

describe("members-only groups", () => {
  let alice, mallory;
  before(async () => {
    node = await startNode();
    backend = await node.backend();
    await backend.admin("members.add", { groupID: "club", userIDs: ["alice"] });
    await backend.admin("set", { groupID: "club", counters: { likes: 1 } });
    alice = await login(node, "alice");
    mallory = await login(node, "mallory");
  });
  after(async () => {
    await alice?.chat.logout();
    await mallory?.chat.logout();
    await backend?.close();
    await node?.close();
  });

  test("a non-member gets 10007 for every call, and nothing changes", async () => {
    for (const call of [
      (c) => c.getGroupCounters({ groupID: "club" }),
      (c) => c.increaseGroupCounter({ groupID: "club", key: "likes", value: 1 }),
      (c) => c.decreaseGroupCounter({ groupID: "club", key: "likes", value: 1 }),
      (c) => c.setGroupCounters({ groupID: "club", counters: { likes: 100 } }),
    ]) {
      const err = await rejection(call(mallory.chat));
      assert.ok(err instanceof TallyError);
      assert.equal(err.code, 10007, err.message);
    }
    assert.deepEqual((await backend.admin("get", { groupID: "club" })).counters, { likes: 1 });
  });

  test("members hear the group's updates; a non-member who tried does not", async () => {
    const { data } = await alice.chat.getGroupCounters({ groupID: "club" });
    assert.deepEqual(data.counters, { likes: 1 });
    await rejection(mallory.chat.getGroupCounters({ groupID: "club" }));
    await alice.chat.increaseGroupCounter({ groupID: "club", key: "likes", value: 1 });
    await alice.updates.wait((d) => d.groupID === "club" && d.value === 2);
    // An open group's update after it: mallory hears that one and, since
    // updates of one node arrive in order, would have heard club's first.
    await mallory.chat.getGroupCounters({ groupID: "open" });
    await backend.admin("increase", { groupID: "open", key: "k", value: 1 });
    await mallory.updates.wait((d) => d.groupID === "open");
    assert.deepEqual(mallory.updates.seen.filter((d) => d.groupID === "club"), []);
  });

  test("a user added to the group is let in and hears its updates", async () => {
    const bob = await login(node, "bob");
    try {
      assert.equal((await rejection(bob.chat.getGroupCounters({ groupID: "club" }))).code, 10007);
      await backend.admin("members.add", { groupID: "club", userIDs: ["bob"] });
      // bob's connection is closed; the SDK signs in again with the new
      // grants, gets the group and follows it on its members' subject.
      await alice.chat.increaseGroupCounter({ groupID: "club", key: "likes", value: 10 });
      const u = await bob.updates.wait((d) => d.groupID === "club", 10_000);
      assert.ok(u.value >= 12, JSON.stringify(u));
      const { data } = await bob.chat.getGroupCounters({ groupID: "club" });
      assert.ok(data.counters.likes >= 12);
    } finally {
      await bob.chat.logout();
    }
  });

  test("a removed member stops hearing the group within seconds, and stays out", async () => {
    await backend.admin("members.add", { groupID: "club2", userIDs: ["dave"] });
    const dave = await login(node, "dave");
    try {
      await dave.chat.getGroupCounters({ groupID: "club2" });
      await dave.chat.getGroupCounters({ groupID: "open2" });
      await backend.admin("increase", { groupID: "club2", key: "k", value: 1 });
      await dave.updates.wait((d) => d.groupID === "club2");
      await backend.admin("members.remove", { groupID: "club2", userIDs: ["dave"] });
      // Each round changes club2, then the open group open2: a round whose
      // open2 change dave hears without its club2 change shows him out.
      const round = async () => {
        const c = await backend.admin("increase", { groupID: "club2", key: "k", value: 1 });
        const o = await backend.admin("increase", { groupID: "open2", key: "k", value: 1 });
        await dave.updates.wait((d) => d.groupID === "open2" && d.value >= o.value, 10_000);
        return dave.updates.seen.some((d) => d.groupID === "club2" && d.value >= c.value);
      };
      const deadline = Date.now() + 10_000;
      while (await round()) assert.ok(Date.now() < deadline, "dave still hears club2 10 s after his removal");
      for (let i = 0; i < 3; i++) assert.equal(await round(), false, "dave heard club2 again");
      assert.equal((await rejection(dave.chat.getGroupCounters({ groupID: "club2" }))).code, 10007);
    } finally {
      await dave.chat.logout();
    }
  });
});
