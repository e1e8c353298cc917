// The test harness itself: a node whose ports, chosen by the harness, are
// taken before it binds them starts on others, and a binary that cannot be
// run makes start reject (not end the process).
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { TallyNode } from "../../tallynode.js";
import { rejection } from "./helpers.js";

test("a node whose chosen port is taken before it starts takes another", async () => {
  const node = new TallyNode();
  await node.prepare();
  const taken = node.port;
  const squatter = createServer();
  await new Promise((resolve, reject) => {
    squatter.on("error", reject);
    squatter.listen(taken, "127.0.0.1", resolve);
  });
  try {
    await node.start();
    assert.notEqual(node.port, taken);
    const b = await node.backend();
    const reply = await b.admin("get", { groupID: "g" });
    assert.equal(reply.groupID, "g");
  } finally {
    squatter.close();
    await node.close();
  }
});

test("a binary that cannot be run makes start reject, and close still works", async () => {
  const node = new TallyNode();
  await node.prepare();
  node.bin = `${node.dir}/no-such-tally-node`;
  const err = await rejection(node.start());
  assert.match(err.message, /could not be started.*ENOENT/);
  await node.close();
});
