// The live-room demo: starts a tally node with a WebSocket listener and a
// demo signing key, and serves the page, the SDK bundled for browsers and
// an endpoint that mints a signature for any user name.
//
// That endpoint is what makes this a local demo only: anyone who reaches it
// signs in as anyone. A real app mints a signature on its back end after its
// own login, for the user who logged in.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { startNode } from "../tallynode.js";

const here = dirname(fileURLToPath(import.meta.url));
const files = { "/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css" };
const types = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

/** VIP_ROOM is a members-only room whose one member is alice. */
export const VIP_ROOM = "vip";

/**
 * startDemo starts the node and the page's server on port (0: a free one);
 * it resolves with {url, node, close}.
 */
export async function startDemo({ port = 0, log = false } = {}) {
  const [node, sdk] = await Promise.all([startNode({ log }), bundle()]);
  const b = await node.backend();
  await b.admin("members.add", { groupID: VIP_ROOM, userIDs: ["alice"] });
  await b.close();
  const config = JSON.stringify({ servers: [node.wsURL] });
  const http = createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    try {
      if (url.pathname === "/sdk.js") return send(res, 200, types.js, sdk);
      if (url.pathname === "/config") return send(res, 200, "application/json", config);
      if (url.pathname === "/usersig") {
        const user = url.searchParams.get("user") ?? "";
        return send(res, 200, "application/json", JSON.stringify({ userSig: node.mint(user, { ttl: 3600 }) }));
      }
      const file = files[url.pathname];
      if (!file) return send(res, 404, "text/plain", "not found");
      send(res, 200, types[file.split(".").pop()], await readFile(join(here, "public", file)));
    } catch (err) {
      send(res, 500, "text/plain", String(err));
    }
  });
  await new Promise((resolve) => http.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${http.address().port}`,
    node,
    async close() {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      await node.close();
    },
  };
}

// bundle builds the SDK and nats-core into one ES module for browsers:
// nats-core ships CommonJS, which a browser cannot import as it is.
async function bundle() {
  const out = await build({
    entryPoints: [join(here, "..", "sdk", "src", "index.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0].contents;
}

function send(res, status, type, body) {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8080);
  const demo = await startDemo({ port, log: true });
  console.log(`tally demo: open ${demo.url}/?user=alice and ${demo.url}/?user=bob (node on ${demo.node.wsURL}); Ctrl-C stops`);
  const stop = async () => {
    await demo.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
