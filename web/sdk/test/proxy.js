// A TCP proxy in front of a node's WebSocket port, which a test can make
// drop what the node sends on the connections it has (so that a reply is
// lost), refuse connections, or cut the ones it has.
import { connect, createServer } from "node:net";

export async function startProxy(targetPort) {
  let mode = "pass"; // pass | refuse
  const pairs = new Set();
  const server = createServer((client) => {
    if (mode === "refuse") return client.destroy();
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream, drop: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (b) => upstream.write(b));
    upstream.on("data", (b) => {
      if (!pair.drop) client.write(b);
    });
    for (const s of [client, upstream]) {
      s.on("close", end);
      s.on("error", end);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    /** drop: from now on, what the node sends on today's connections never reaches their clients. */
    drop() {
      for (const p of pairs) p.drop = true;
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
