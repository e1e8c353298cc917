// Helpers of the SDK's tests: chats logged in to a node, and waits with a
// deadline for what the SDK tells.
import { create, EVENT } from "../dist/index.js";

/**
 * PATIENT is a refusedFor longer than any test: refused sign-ins (a node
 * that starts, a cluster electing a leader) never end such a session, so
 * no test depends on how fast those are over.
 */
export const PATIENT = 10 * 60_000;

/**
 * login creates a chat on node (or on servers), with refusedFor PATIENT
 * unless options say otherwise, and logs userID in with a fresh signature.
 */
export async function login(node, userID, { servers, ...options } = {}) {
  const chat = create({
    servers: servers ?? node.wsURL,
    timeout: 2000,
    refusedFor: PATIENT,
    ...options,
    connectOptions: { reconnectTimeWait: 100, ...options.connectOptions },
  });
  const updates = collect(chat, EVENT.GROUP_COUNTER_UPDATED);
  await chat.login({ userID, userSig: node.mint(userID) });
  return { chat, updates };
}

/**
 * collect records the data of every event name of chat; wait(pred) resolves
 * with the first recorded one that pred accepts, within a deadline.
 */
export function collect(chat, name) {
  const seen = [];
  const waiters = new Set();
  chat.on(name, (e) => {
    seen.push(e.data);
    for (const w of waiters) if (w.pred(e.data)) w.resolve(e.data);
  });
  return {
    seen,
    wait(pred = () => true, ms = 5000) {
      const hit = seen.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (d) => { clearTimeout(timer); waiters.delete(w); resolve(d); } };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no ${name} event matching ${pred} within ${ms} ms; seen ${JSON.stringify(seen)}`));
        }, ms);
        waiters.add(w);
      });
    },
  };
}

/** waitFor polls fn until it returns a truthy value, within ms. */
export async function waitFor(fn, ms = 5000, what = String(fn)) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms: ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** rejection resolves with what p rejects with, and fails when p resolves. */
export async function rejection(p) {
  try {
    const v = await p;
    throw Object.assign(new Error(`resolved with ${JSON.stringify(v)}, want a rejection`), { resolvedInstead: true });
  } catch (err) {
    if (err.resolvedInstead) throw err;
    return err;
  }
}
