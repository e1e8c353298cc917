// screenshot.js takes docs/demo.png (make demo-screenshot): the live-room
// demo in two real Chromium windows, not headless, side by side on an Xvfb
// screen of their own, alice's and bob's after their likes, and the X
// screen grabbed with ImageMagick's import.
//   TALLY_NODE=bin/tally-node node demo/screenshot.js docs/demo.png
// It needs Xvfb, import and chromium on PATH (make demo-screenshot installs
// Debian's xvfb, imagemagick and chromium when missing).
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { startDemo } from "./server.js";

const out = process.argv[2];
if (!out) throw new Error("usage: node demo/screenshot.js OUT.png");
const screen = { width: 1040, height: 700 };
const win = { width: 500, height: 660, top: 20, gap: 13 };

// Xvfb picks a free display and writes its number on fd 3 once it serves.
// Whatever fails from here on (Xvfb itself, the demo's start, Chromium),
// the finally below stops Xvfb, and the exit hook does on a crash.
const xvfb = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", `${screen.width}x${screen.height}x24`, "-nolisten", "tcp"],
  { stdio: ["ignore", "ignore", "inherit", "pipe"] });
process.on("exit", () => xvfb.kill());
let demo;
const browsers = [];
try {
  const display = await new Promise((resolve, reject) => {
    let s = "";
    xvfb.stdio[3].on("data", (b) => {
      s += b;
      if (s.includes("\n")) resolve(`:${s.trim()}`);
    });
    xvfb.on("error", (err) => reject(new Error(`cannot run Xvfb: ${err.message}`)));
    xvfb.on("exit", (code) => reject(new Error(`Xvfb exited (${code}) before it served`)));
  });
  demo = await startDemo();
  const executablePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  const open = async (user, i) => {
    const browser = await chromium.launch({
      executablePath,
      headless: false,
      env: { ...process.env, DISPLAY: display },
      // --test-type: no bar about --no-sandbox (needed as root); without
      // --enable-automation: no bar about automated test software.
      ignoreDefaultArgs: ["--enable-automation"],
      args: ["--no-sandbox", "--test-type", "--no-first-run", "--disable-features=Translate",
        `--window-position=${win.gap + i * (win.width + win.gap)},${win.top}`, `--window-size=${win.width},${win.height}`],
    });
    browsers.push(browser);
    const page = await (await browser.newContext({ viewport: null })).newPage();
    await page.goto(`${demo.url}/?user=${user}&room=live`);
    return page;
  };
  const until = (page, id, want) =>
    page.waitForFunction(([id, want]) => document.getElementById(id).textContent === want, [id, want], { timeout: 10_000 });
  const alice = await open("alice", 0);
  await until(alice, "online", "1");
  const bob = await open("bob", 1);
  await until(bob, "online", "2");
  await until(alice, "online", "2");
  await alice.click("#like");
  await until(bob, "likes", "1");
  await bob.click("#like");
  await until(alice, "likes", "2");
  await until(bob, "likes", "2");
  // Two animation frames on each page: the windows show what the DOM says.
  for (const p of [alice, bob]) await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await promisify(execFile)("import", ["-display", display, "-window", "root", out]);
  console.log(`screenshot.js: wrote ${out}`);
} finally {
  try {
    await Promise.allSettled(browsers.map((b) => b.close()));
    await demo?.close();
  } finally {
    xvfb.kill();
  }
}
