// GroupState's ordering rules, without a server: which updates reach the
// app, when a gap asks for a get, and what a get then tells.
import assert from "node:assert/strict";
import { test } from "node:test";
import { GroupState } from "../dist/index.js";

const u = (key, value, seq) => ({ groupID: "g", key, value, seq });

test("updates in order are told once each; the keys of one set share a seq", () => {
  const g = new GroupState("g");
  assert.deepEqual(g.baseline({ a: 1 }, 1, false), []);
  assert.deepEqual(g.update(u("a", 2, 2)), { emit: u("a", 2, 2), gap: false });
  assert.deepEqual(g.update(u("b", 5, 3)), { emit: u("b", 5, 3), gap: false });
  assert.deepEqual(g.update(u("c", 6, 3)), { emit: u("c", 6, 3), gap: false });
  assert.deepEqual(g.update(u("a", 2, 2)), { gap: false }, "a repeated update is not told again");
  assert.deepEqual(g.update(u("a", 1, 1)), { gap: false }, "an update older than the baseline is not told");
});

test("a gap in seq asks for a get, which tells the keys that changed", () => {
  const g = new GroupState("g");
  g.baseline({ a: 1, b: 1 }, 4, false);
  assert.deepEqual(g.update(u("a", 9, 7)), { emit: u("a", 9, 7), gap: true });
  // Changes 5 and 6 were missed: b went to 3, a key d came and went.
  assert.deepEqual(g.baseline({ a: 9, b: 3 }, 7, true), [u("b", 3, 7)]);
  assert.equal(g.seq, 7);
  assert.deepEqual(g.update(u("b", 4, 8)), { emit: u("b", 4, 8), gap: false });
});

test("a get older than what updates told changes nothing", () => {
  const g = new GroupState("g");
  g.baseline({ a: 1 }, 1, false);
  g.update(u("a", 5, 2));
  assert.deepEqual(g.baseline({ a: 1 }, 1, true), []);
  assert.deepEqual(g.update(u("a", 6, 3)), { emit: u("a", 6, 3), gap: false });
});

test("updates before the first baseline are told, and no gap is seen without one", () => {
  const g = new GroupState("g");
  assert.deepEqual(g.update(u("a", 5, 9)), { emit: u("a", 5, 9), gap: false });
  assert.deepEqual(g.baseline({ a: 5, b: 2 }, 9, false), []);
});

test("a key missing from a newer get was deleted", () => {
  const g = new GroupState("g");
  g.baseline({ a: 1, b: 2 }, 2, false);
  assert.deepEqual(g.baseline({ a: 1 }, 3, true), [{ groupID: "g", key: "b", value: 0, seq: 3, deleted: true }]);
  assert.deepEqual(g.baseline({ a: 1, b: 7 }, 4, true), [u("b", 7, 4)]);
});

test("a deleted update removes the key", () => {
  const g = new GroupState("g");
  g.baseline({ a: 1 }, 1, false);
  const del = { ...u("a", 0, 2), deleted: true };
  assert.deepEqual(g.update(del), { emit: del, gap: false });
  assert.deepEqual(g.baseline({ a: 4 }, 3, true), [u("a", 4, 3)]);
});
