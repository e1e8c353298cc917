// tallynode starts real tally-node processes for the Web SDK's tests, the
// browser test and the demo: the one place that knows how a node with a
// WebSocket listener and end-user sign-in is started.
//
// A node is built from the repository (go build ./cmd/node) unless
// TALLY_NODE names a binary. Each node gets free ports on 127.0.0.1, a data
// directory of its own and an Ed25519 key pair for user signatures, whose
// private half mints signatures as an app's back end would.

import { execFile, spawn } from "node:child_process";
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connectTCP } from "./natstcp.js";

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const children = new Set();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

let built;
/** binary returns the path of tally-node, building it once per process when TALLY_NODE is unset. */
export function binary() {
  if (process.env.TALLY_NODE) return Promise.resolve(process.env.TALLY_NODE);
  built ??= (async () => {
    const out = join(mkdtempSync(join(tmpdir(), "tally-bin-")), "tally-node");
    await run("go", ["build", "-o", out, "./cmd/node"], { cwd: repo });
    return out;
  })();
  return built;
}

/** freePort returns a TCP port on 127.0.0.1 that nothing listens on now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** newUserSigKeys returns an Ed25519 key pair as PEM: public (PKIX) for nodes, private (PKCS#8) for back ends. */
export function newUserSigKeys() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }),
    privateKey,
  };
}

/**
 * mintUserSig mints a user signature as an app's back end does: a JWT signed
 * with Ed25519 (alg EdDSA), claims sub, aud "tally", iat and exp, in
 * base64url without padding. ttl is in seconds; claims overrides any claim.
 */
export function mintUserSig(privateKey, userID, { ttl = 3600, claims = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = enc({ alg: "EdDSA", typ: "JWT" });
  const body = enc({ sub: userID, aud: "tally", iat: now, exp: now + ttl, ...claims });
  const sig = sign(null, Buffer.from(`${head}.${body}`), privateKey).toString("base64url");
  return `${head}.${body}.${sig}`;
}

/**
 * startNode starts a node and resolves once it serves. Options: dataDir
 * (default a new temporary directory), port and wsPort (default free ones),
 * keys (default new ones), log (true: the node's stderr goes to ours).
 */
export async function startNode(options = {}) {
  const node = new TallyNode(options);
  await node.prepare();
  await node.start();
  return node;
}

/**
 * startCluster starts n nodes (default 3) that form one NATS cluster on
 * loopback, each with its own client, WebSocket and route ports, the routes
 * of all on every one and the same user signature keys, and resolves with
 * them once every one serves (they start at once: each waits for the
 * others' JetStream). Options: keys, log, as for startNode.
 */
export async function startCluster(n = 3, { keys = newUserSigKeys(), log } = {}) {
  const taken = new Set();
  const port = async () => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  const routes = [];
  for (let i = 0; i < n; i++) routes.push(`127.0.0.1:${await port()}`);
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(new TallyNode({ keys, log, port: await port(), wsPort: await port(), name: `n${i + 1}`, cluster: routes[i], routes }));
  }
  try {
    for (const node of nodes) await node.prepare();
    await Promise.all(nodes.map((node) => node.start(60_000)));
  } catch (err) {
    await Promise.all(nodes.map((node) => node.close()));
    throw err;
  }
  return nodes;
}

export class TallyNode {
  /**
   * Options: dataDir, port, wsPort, keys, log (see startNode); name, cluster
   * (the route listener's host:port) and routes (every node's) for a
   * member of a cluster (see startCluster).
   */
  constructor({ dataDir, port, wsPort, keys, log, name, cluster, routes } = {}) {
    this.name = name;
    this.cluster = cluster;
    this.routes = routes;
    this.dir = mkdtempSync(join(tmpdir(), "tally-node-"));
    this.dataDir = dataDir ?? join(this.dir, "data");
    this.port = port;
    this.wsPort = wsPort;
    // Ports chosen here may be taken before the node binds them (another
    // process's connection can get one as its local port): until the node
    // first serves, start takes others.
    this.ownPorts = port === undefined && wsPort === undefined;
    this.served = false;
    this.keys = keys ?? newUserSigKeys();
    this.log = log ?? process.env.TALLY_TEST_LOGS === "1";
    this.stderr = "";
    this.backends = new Set();
  }

  async prepare() {
    this.bin = await binary();
    this.port ??= await freePort();
    this.wsPort ??= await freePort();
    const keyFile = join(this.dir, "usersig.pub");
    writeFileSync(keyFile, this.keys.publicPem);
    this.args = [
      "--data", this.dataDir, "--listen", `127.0.0.1:${this.port}`, "--log-level", "warn",
      "--websocket", `127.0.0.1:${this.wsPort}`, "--websocket-no-tls", "--user-sig-key", keyFile,
    ];
    if (this.name) this.args.push("--name", this.name);
    if (this.cluster) this.args.push("--cluster", this.cluster, "--routes", this.routes.join(","));
  }

  /**
   * start starts the process and resolves once it prints that it serves;
   * before the node first served on ports it chose itself, ports taken
   * meanwhile are chosen again (at most 5 tries).
   */
  async start(deadline = 30_000) {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startOnce(deadline);
        this.served = true;
        return;
      } catch (err) {
        if (this.served || !this.ownPorts || attempt >= 5 || !/address already in use/.test(err.message)) throw err;
        this.port = this.wsPort = undefined;
        this.stderr = "";
        await this.prepare();
      }
    }
  }

  /** wsURL is the node's WebSocket URL, for create({servers}). */
  get wsURL() {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  /** natsURL is the node's TCP URL, where back ends connect. */
  get natsURL() {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** mint mints a signature for userID with this node's key (see mintUserSig). */
  mint(userID, options) {
    return mintUserSig(this.keys.privateKey, userID, options);
  }

  /**
   * backend connects to the node over TCP as a trusted back end: admin(op,
   * body) calls tally.v1.admin.<op> and resolves with the reply's JSON, or
   * rejects with an Error whose code is the contract's. A write carries a
   * request ID, so that trying it again is safe; after a restart, admin
   * connects again.
   */
  async backend() {
    const dial = () => connectTCP(this.port);
    const b = {
      nc: await dial(),
      async admin(op, body) {
        const payload = JSON.stringify(op === "get" || body.requestID ? body : { ...body, requestID: randomUUID() });
        for (let attempt = 1; ; attempt++) {
          let msg;
          try {
            if (b.nc.isClosed()) b.nc = await dial();
            msg = await b.nc.request(`tally.v1.admin.${op}`, payload, { timeout: 2000 });
            if (msg.status === "503") throw new Error(`no responders to tally.v1.admin.${op}`);
          } catch (err) {
            if (attempt >= 5) throw err;
            await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
            continue;
          }
          const code = Number(msg.headers?.get("Nats-Service-Error-Code"));
          if (code) throw Object.assign(new Error(msg.string()), { code });
          return msg.json();
        }
      },
      close: () => b.nc.close(),
    };
    this.backends.add(b);
    return b;
  }

  /** startOnce starts the process and resolves once it prints that it serves. */
  startOnce(deadline) {
    const child = spawn(this.bin, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    children.add(child);
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      });
      // A binary that cannot be run gives an error and no exit; unhandled,
      // the error would end this process, and callers' cleanup with it.
      child.on("error", (error) => {
        if (child.pid !== undefined) return; // a kill that failed: the node runs on
        children.delete(child);
        resolve({ error });
      });
    });
    child.stderr.on("data", (b) => {
      this.stderr += b;
      if (this.log) process.stderr.write(b);
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tally-node did not serve within ${deadline} ms:\n${this.stderr}`)), deadline);
      let out = "";
      child.stdout.on("data", (b) => {
        out += b;
        if (out.includes("tally: serving on ")) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.exited.then(({ code, signal, error }) => {
        clearTimeout(timer);
        if (error) reject(new Error(`tally-node could not be started (${this.bin}): ${error.message}`));
        else reject(new Error(`tally-node exited (${code ?? signal}) before serving:\n${this.stderr}`));
      });
    });
  }

  /** stop sends signal (SIGTERM: a graceful stop; SIGKILL: a crash) and waits for the exit. */
  async stop(signal = "SIGTERM", deadline = 30_000) {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    await Promise.all([...this.backends].map((b) => b.nc.close()));
    this.child.kill(signal);
    let timer;
    const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`tally-node did not exit within ${deadline} ms`)), deadline)));
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** restart stops the node with signal and starts it again on the same ports and data. */
  async restart(signal = "SIGTERM") {
    await this.stop(signal);
    await this.start();
  }

  /** close stops the node and removes its files. */
  async close() {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}
