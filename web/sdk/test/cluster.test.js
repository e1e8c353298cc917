// The SDK on a three-node cluster: users on different nodes hear each
// other's changes, and a write whose node is SIGKILLed with the reply
// unsent is retried through another node and applied exactly once.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startCluster } from "../../tallynode.js";
import { EVENT } from "../dist/index.js";
import { collect, login, waitFor } from "./helpers.js";
import { startProxy } from "./proxy.js";

describe("a three-node cluster", () => {
  let nodes, backend;
  before(async () => {
    nodes = await startCluster(3);
    backend = await nodes[2].backend(); // n3 stays up throughout
  });
  after(async () => {
    await backend?.close();
    await Promise.all((nodes ?? []).map((n) => n.close()));
  });

  test("a user's change reaches a user on another node with its seq, and a write retried across a SIGKILL of its node is applied once", async () => {
    const [n1, n2, n3] = nodes;
    // alice signs in on n1 (through a proxy that can lose the node's
    // replies), with n2 and n3 to fail over to; bob on n2 alone. Both
    // carry on across refused sign-ins however long the cluster takes to
    // elect leaders again (helpers' login: refusedFor PATIENT).
    const proxy = await startProxy(n1.wsPort);
    const alice = await login(n1, "alice", {
      servers: [proxy.url, n2.wsURL, n3.wsURL],
      timeout: 5000,
      connectOptions: { noRandomize: true },
    });
    const bob = await login(n2, "bob", { servers: n2.wsURL, timeout: 5000 });
    const kicked = collect(alice.chat, EVENT.KICKED_OUT);
    try {
      const likes = (d) => d.groupID === "room" && d.key === "likes";
      await alice.chat.setGroupCounters({ groupID: "room", counters: { likes: 0 } }); // seq 1
      await bob.chat.getGroupCounters({ groupID: "room" }); // bob watches room
      await alice.chat.increaseGroupCounter({ groupID: "room", key: "likes", value: 3 }); // seq 2
      assert.deepEqual(await bob.updates.wait((d) => likes(d) && d.seq === 2, 10_000), { groupID: "room", key: "likes", value: 3, seq: 2 });
      assert.equal(proxy.stats.connections, 1, "alice is on n1");

      proxy.drop(); // n1's replies no longer reach alice
      const write = alice.chat.increaseGroupCounter({ groupID: "room", key: "likes", value: 5 });
      const got = async () => (await backend.admin("get", { groupID: "room" })).counters.likes;
      await waitFor(async () => (await got()) === 8, 10_000, "the first attempt applied");
      await n1.stop("SIGKILL"); // n1 crashes with the reply unsent
      const { data } = await write.catch((err) => {
        throw new Error(`${err.message}; kicked out: ${JSON.stringify(kicked.seen)}`);
      }); // the SDK's retry, with the same requestID, through n2 or n3
      assert.deepEqual(data, { groupID: "room", key: "likes", value: 8 });
      assert.equal(await got(), 8, "applied more than once");
      await bob.updates.wait((d) => likes(d) && d.seq === 3, 10_000);

      // The next write is seq 4: the retry took no seq of its own.
      const next = await alice.chat.increaseGroupCounter({ groupID: "room", key: "likes", value: 1 });
      assert.equal(next.data.value, 9);
      await bob.updates.wait((d) => likes(d) && d.seq === 4, 10_000);
      assert.deepEqual(bob.updates.seen.filter((d) => likes(d) && d.seq > 1), [
        { groupID: "room", key: "likes", value: 3, seq: 2 },
        { groupID: "room", key: "likes", value: 8, seq: 3 },
        { groupID: "room", key: "likes", value: 9, seq: 4 },
      ]);
      const h = await backend.admin("history", { groupID: "room" });
      assert.deepEqual(h.entries.map((e) => [e.seq, e.user, e.op]), [
        [1, "alice", "set"], [2, "alice", "increase"], [3, "alice", "increase"], [4, "alice", "increase"],
      ]);
    } finally {
      await alice.chat.logout();
      await bob.chat.logout();
      await proxy.close();
    }
  });
});
