// The seed's examples (Tencent Cloud Chat's group counters), each as the
// seed writes it, against a real node over WebSocket.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EVENT } from "../dist/index.js";
import { startNode } from "../../tallynode.js";
import { login } from "./helpers.js";

describe("the seed's examples", () => {
  let node, chat, updates;
  before(async () => {
    node = await startNode();
    ({ chat, updates } = await login(node, "alice"));
  });
  after(async () => {
    await chat?.logout();
    await node?.close();
  });

  test("setGroupCounters sets key1 and key2 to 0", async () => {
    const imResponse = await chat.setGroupCounters({ groupID: "group1", counters: { key1: 0, key2: 0 } });
    assert.equal(imResponse.code, 0);
    assert.deepEqual(imResponse.data.counters, { key1: 0, key2: 0 });
  });

  test("increaseGroupCounter takes key1 from 8 to 10", async () => {
    await chat.setGroupCounters({ groupID: "group1", counters: { key1: 8 } });
    const imResponse = await chat.increaseGroupCounter({ groupID: "group1", key: "key1", value: 2 });
    const { groupID, key, value } = imResponse.data;
    assert.deepEqual({ groupID, key, value }, { groupID: "group1", key: "key1", value: 10 });
  });

  test("decreaseGroupCounter takes key1 from 8 to 6", async () => {
    await chat.setGroupCounters({ groupID: "group1", counters: { key1: 8 } });
    const imResponse = await chat.decreaseGroupCounter({ groupID: "group1", key: "key1", value: 2 });
    assert.deepEqual(imResponse.data, { groupID: "group1", key: "key1", value: 6 });
  });

  test("getGroupCounters gets key1 and key2, and every counter", async () => {
    await chat.setGroupCounters({ groupID: "group1", counters: { key1: 6, key2: 0, key3: 3 } });
    const some = await chat.getGroupCounters({ groupID: "group1", keyList: ["key1", "key2"] });
    assert.deepEqual(some.data.counters, { key1: 6, key2: 0 });
    const all = await chat.getGroupCounters({ groupID: "group1" });
    assert.deepEqual(all.data.counters, { key1: 6, key2: 0, key3: 3 });
  });

  test("GROUP_COUNTER_UPDATED tells groupID, key and value of each change", async () => {
    const seen = [];
    const onGroupCounterUpdated = function (event) {
      const { groupID, key, value } = event.data;
      seen.push({ groupID, key, value });
    };
    chat.on(EVENT.GROUP_COUNTER_UPDATED, onGroupCounterUpdated);
    const { data } = await chat.increaseGroupCounter({ groupID: "group1", key: "key2", value: 5 });
    const u = await updates.wait((d) => d.key === "key2" && d.value === data.value);
    assert.equal(u.groupID, "group1");
    assert.ok(seen.some((d) => d.key === "key2" && d.value === 5), JSON.stringify(seen));
    chat.off(EVENT.GROUP_COUNTER_UPDATED, onGroupCounterUpdated);
    await chat.increaseGroupCounter({ groupID: "group1", key: "key2", value: 1 });
    await updates.wait((d) => d.key === "key2" && d.value === 6);
    assert.ok(!seen.some((d) => d.value === 6), "a listener removed with off still heard an update");
  });
});
