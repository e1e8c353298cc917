// natstcp is a minimal NATS client over TCP (request/reply only) for the
// tests' back end. nats-core keeps its transport in a global: a process that
// opened a TCP connection with @nats-io/transport-node afterwards dialled
// its WebSocket reconnects over TCP and hung. So the back end speaks the
// protocol itself: CONNECT, SUB, PUB, and MSG/HMSG replies.
import { connect as dial } from "node:net";

export async function connectTCP(port, { timeout = 2000 } = {}) {
  const sock = dial(port, "127.0.0.1");
  const inbox = `_INBOX.backend${Math.random().toString(36).slice(2)}`;
  const pending = new Map();
  let buf = Buffer.alloc(0);
  let next = 0;
  let closed = false;
  let ready;
  const info = new Promise((resolve, reject) => {
    ready = resolve;
    sock.once("error", reject);
    setTimeout(() => reject(new Error(`no INFO from 127.0.0.1:${port} within ${timeout} ms`)), timeout);
  });
  sock.on("data", (b) => {
    buf = Buffer.concat([buf, b]);
    for (;;) {
      const eol = buf.indexOf("\r\n");
      if (eol < 0) return;
      const line = buf.subarray(0, eol).toString();
      const [op, ...args] = line.split(" ");
      if (op === "MSG" || op === "HMSG") {
        const total = Number(args.at(-1));
        const hdr = op === "HMSG" ? Number(args.at(-2)) : 0;
        if (buf.length < eol + 2 + total + 2) return;
        const body = buf.subarray(eol + 2, eol + 2 + total);
        buf = buf.subarray(eol + 2 + total + 2);
        const waiter = pending.get(args[0]);
        if (waiter) waiter(reply(body.subarray(0, hdr).toString(), body.subarray(hdr).toString()));
        continue;
      }
      buf = buf.subarray(eol + 2);
      if (op === "INFO") ready();
      else if (op === "PING") sock.write("PONG\r\n");
    }
  });
  sock.on("close", () => {
    closed = true;
    for (const w of pending.values()) w(new Error("connection closed"));
  });
  await info;
  sock.write(`CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"lang":"node-test","version":"0"}\r\nSUB ${inbox}.* 1\r\n`);
  return {
    isClosed: () => closed,
    /** request sends payload to subject and resolves with the reply: headers.get(name), string(), json(). */
    request(subject, payload, { timeout: ms = 2000 } = {}) {
      const reply = `${inbox}.${next++}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(reply);
          reject(new Error(`timeout: no reply to ${subject} within ${ms} ms`));
        }, ms);
        pending.set(reply, (r) => {
          clearTimeout(timer);
          pending.delete(reply);
          r instanceof Error ? reject(r) : resolve(r);
        });
        const data = Buffer.from(payload);
        sock.write(`PUB ${subject} ${reply} ${data.length}\r\n`);
        sock.write(Buffer.concat([data, Buffer.from("\r\n")]));
      });
    },
    close() {
      sock.destroy();
      return Promise.resolve();
    },
  };
}

function reply(head, body) {
  const headers = new Map();
  for (const line of head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const status = head.split("\r\n")[0]?.split(" ")[1];
  return {
    status,
    headers: { get: (k) => headers.get(k.toLowerCase()) },
    string: () => body,
    json: () => JSON.parse(body),
  };
}
