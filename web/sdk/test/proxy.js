// A TCP proxy in front of a node's WebSocket port, which a test can make
// drop what the node sends on the connections it has (so that a reply is
// lost), refuse connections, or cut the ones it has.
//
// With { filter: true } it also reads what the node sends: past the
// WebSocket handshake, the frames' payloads are the NATS protocol, which
// it parses into operations and sends on in frames of its own, leaving out
// the messages (MSG, HMSG) that dropMsg's predicate accepts: a message lost
// on a connection that stays up. Compressed frames are not expected (the
// node offers no compression) and end the connection.
import { connect, createServer } from "node:net";

export async function startProxy(targetPort, { filter = false } = {}) {
  let mode = "pass"; // pass | refuse
  let dropPred;
  const pairs = new Set();
  const stats = { connections: 0, dropped: [], passed: [], error: undefined };
  const server = createServer((client) => {
    if (mode === "refuse") return client.destroy();
    stats.connections++;
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream, drop: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (b) => upstream.write(b));
    const fail = (why) => {
      stats.error = why;
      end();
    };
    const reader = filter ? natsReader((b) => client.write(b), fail, {
      drop: (subject, payload) => {
        const m = { subject, payload: payload.toString() };
        const d = dropPred?.(m.subject, m.payload) ?? false;
        (d ? stats.dropped : stats.passed).push(m);
        return d;
      },
    }) : (b) => client.write(b);
    upstream.on("data", (b) => {
      if (!pair.drop) reader(b);
    });
    for (const s of [client, upstream]) {
      s.on("close", end);
      s.on("error", end);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    /**
     * stats: connections accepted; with filter, the messages dropped and
     * passed ({subject, payload}), and why a connection was cut (error).
     */
    stats,
    /** drop: from now on, what the node sends on today's connections never reaches their clients. */
    drop() {
      for (const p of pairs) p.drop = true;
    },
    /** dropMsg (filter only): from now on, leave out the node's messages for which pred(subject, payload) is true. */
    dropMsg(pred) {
      if (!filter) throw new Error("dropMsg needs startProxy(port, { filter: true })");
      dropPred = pred;
    },
    /** refuse: cut every connection and refuse new ones until pass. */
    refuse() {
      mode = "refuse";
      for (const p of pairs) p.client.destroy();
    },
    pass: () => (mode = "pass"),
    close() {
      for (const p of pairs) p.client.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// natsReader returns a function taking the node's bytes of one connection:
// it passes the HTTP handshake on, then parses WebSocket frames, passes
// control frames on as they are, and sends the NATS operations of data
// frames on in one binary frame per chunk, without those that drop accepts.
function natsReader(write, fail, { drop }) {
  let buf = Buffer.alloc(0);
  let handshake = true;
  let nats = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (handshake) {
      const i = buf.indexOf("\r\n\r\n");
      if (i < 0) return;
      const head = buf.subarray(0, i + 4);
      if (/sec-websocket-extensions/i.test(head.toString())) return fail(`a WebSocket extension: ${head}`);
      write(head);
      buf = buf.subarray(i + 4);
      handshake = false;
    }
    for (;;) {
      if (buf.length < 2) return;
      const b0 = buf[0], b1 = buf[1];
      let len = b1 & 0x7f, off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (b1 & 0x80) return fail("a masked frame from the node");
      if (buf.length < off + len) return;
      const frame = buf.subarray(0, off + len);
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (b0 & 0x70) return fail(`a frame with RSV bits ${b0 & 0x70} (compressed?)`);
      const opcode = b0 & 0x0f;
      if (opcode >= 8) {
        write(frame);
        continue;
      }
      nats = Buffer.concat([nats, payload]);
      const out = [];
      for (;;) {
        const eol = nats.indexOf("\r\n");
        if (eol < 0) break;
        const line = nats.subarray(0, eol).toString();
        let size = eol + 2;
        const msg = /^(H?MSG)\s/i.test(line);
        if (msg) {
          const n = Number(line.trim().split(/\s+/).pop());
          if (nats.length < eol + 2 + n + 2) break;
          size = eol + 2 + n + 2;
        }
        const op = nats.subarray(0, size);
        nats = nats.subarray(size);
        if (msg && drop(line.split(/\s+/)[1], op.subarray(eol + 2, size - 2))) continue;
        out.push(op);
      }
      if (out.length > 0) write(wsFrame(Buffer.concat(out)));
    }
  };
}

function wsFrame(payload) {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x82, n])
    : n < 65536 ? Buffer.from([0x82, 126, n >> 8, n & 0xff])
    : Buffer.concat([Buffer.from([0x82, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, payload]);
}
