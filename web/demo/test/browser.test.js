// The live-room demo in a real Chromium (Debian's, driven by
// playwright-core): two users in two browser contexts share a room; a
// non-member of a members-only room gets 10007 and sees none of its updates.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { VIP_ROOM, startDemo } from "../server.js";

function chromiumPath() {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not on PATH: run web/demo/install-chromium.sh (make web-test does)");
  }
}

describe("the live-room demo in Chromium", () => {
  let demo, browser;
  before(async () => {
    [demo, browser] = await Promise.all([
      startDemo(),
      chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] }),
    ]);
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
  });

  async function open(user, room = "live") {
    const context = await browser.newContext({ viewport: { width: 480, height: 620 } });
    const page = await context.newPage();
    page.on("pageerror", (err) => console.error(`${user}'s page:`, err));
    await page.goto(`${demo.url}/?user=${user}&room=${room}`);
    return page;
  }
  const text = (page, id) => page.locator(`#${id}`).textContent();
  const until = (page, id, want) =>
    page.waitForFunction(([id, want]) => document.getElementById(id).textContent === want, [id, want], { timeout: 10_000 });

  test("one user's like appears on the other's page; the online count follows joins and leaves", async () => {
    const alice = await open("alice");
    await until(alice, "online", "1");
    const bob = await open("bob");
    await until(bob, "online", "2");
    await until(alice, "online", "2");
    assert.equal(await text(alice, "likes"), "0");

    await alice.click("#like");
    await until(alice, "likes", "1");
    await until(bob, "likes", "1");
    await bob.click("#like");
    await until(alice, "likes", "2");
    assert.match(await text(alice, "log"), /likes = 2 \(seq \d+\)/);

    await bob.click("#leave");
    await until(alice, "online", "1");
    assert.equal(await text(alice, "error"), "");
    await alice.context().close();
    await bob.context().close();
  });

  test("a non-member of a members-only room gets 10007 and sees none of its updates", async () => {
    const carol = await open("carol", VIP_ROOM);
    await carol.waitForFunction(() => document.getElementById("error").textContent.includes("10007"), null, { timeout: 10_000 });
    const alice = await open("alice", VIP_ROOM);
    await until(alice, "online", "1");
    await alice.click("#like");
    await until(alice, "likes", "1");
    // A second member's page hears the like: carol's would have by now.
    const alice2 = await open("alice", VIP_ROOM);
    await until(alice2, "online", "2");
    await alice.click("#like");
    await until(alice2, "likes", "2");
    assert.equal(await text(carol, "likes"), "–");
    assert.equal(await text(carol, "log"), "");
    for (const p of [carol, alice, alice2]) await p.context().close();
  });
});
