import {
  errors as natsErrors,
  nuid,
  tokenAuthenticator,
  wsconnect,
  type Msg,
  type NatsConnection,
  type Subscription,
  type WsConnectionOptions,
} from "@nats-io/nats-core";
import { CODE, TallyError } from "./errors.js";
import { GroupState, type CounterUpdate } from "./group.js";
import { readUserSig, type UserSigClaims } from "./usersig.js";
import {
  checkCounters,
  checkGroupID,
  checkKey,
  checkKeyList,
  checkUserID,
  checkValue,
} from "./validate.js";

/** EVENT names the events of the chat object. */
export const EVENT = {
  /** A counter of a watched group changed: event.data is {groupID, key, value, seq}. */
  GROUP_COUNTER_UPDATED: "groupCounterUpdated",
  /**
   * The signature expires soon: hand a fresh one to renewUserSig.
   * event.data is {userID, expiresAt} (ms since the epoch).
   */
  USER_SIG_EXPIRING: "userSigExpiring",
  /** The session ended without logout: event.data is {type}, a KICKED_OUT_TYPE. */
  KICKED_OUT: "kickedOut",
} as const;

/** KICKED_OUT_TYPE says why a session ended. */
export const KICKED_OUT_TYPE = {
  /** The signature expired before renewUserSig handed over a fresh one. */
  USERSIG_EXPIRED: "userSigExpired",
  /** The server refused the signature (wrong key, revoked, malformed). */
  AUTH_REFUSED: "authRefused",
} as const;

export type EventName = (typeof EVENT)[keyof typeof EVENT];
export type KickedOutType = (typeof KICKED_OUT_TYPE)[keyof typeof KICKED_OUT_TYPE];

/** EventData maps each event to its event.data. */
export interface EventData {
  groupCounterUpdated: CounterUpdate;
  userSigExpiring: { userID: string; expiresAt: number };
  kickedOut: { type: KickedOutType; message: string };
}

export type Listener<E extends EventName> = (event: { name: E; data: EventData[E] }) => void;

/** Response is what every call resolves with, as in the seed. */
export interface Response<T> {
  code: 0;
  data: T;
}

/** CreateOptions configure create(). Only servers is required. */
export interface CreateOptions {
  /** WebSocket URLs of tally nodes, e.g. "wss://tally.example.com". */
  servers: string | string[];
  /** How long one attempt of a call waits for its reply, in ms. Default 5000. */
  timeout?: number;
  /**
   * How many times a call is tried again after a timeout, 10002, no
   * responders or a lost connection, waiting 0.25 s, 0.5 s, 1 s, then 2 s
   * between attempts. Default 5.
   */
  retries?: number;
  /**
   * How long before the signature's expiry USER_SIG_EXPIRING fires, in ms.
   * Default 5 minutes, and at most half the signature's lifetime.
   */
  renewBefore?: number;
  /**
   * How long sign-ins must go on being refused, in ms, before the refusals
   * end the session with KICKED_OUT (AUTH_REFUSED); it takes three refusals
   * in a row too. Default 20000. Measured with a monotonic clock
   * (performance.now), so a change of the wall clock does not shorten it.
   */
  refusedFor?: number;
  /** Options passed to nats-core's wsconnect (reconnect timing, ping interval). */
  connectOptions?: Partial<WsConnectionOptions>;
}

interface Session {
  userID: string;
  userSig: string;
  claims: UserSigClaims;
  nc: NatsConnection;
  timers: ReturnType<typeof setTimeout>[];
  /** Rejects the attempts in flight when the connection is lost. */
  inflight: Set<(err: Error) => void>;
  /** Resolves when the connection is back; replaced on every disconnect. */
  back: Promise<void>;
  reconnected: () => void;
  connected: boolean;
  ended: boolean;
  /** Sign-ins refused in a row since the connection was last up. */
  refusals: number;
  /** When the first of them was refused (performance.now(), ms). */
  refusedSince?: number;
}

/**
 * A node refuses a sign-in for a while now and then: it is starting, the
 * user holds too many connections, or (in a cluster that lost a node) it
 * cannot read the user's groups until the membership index has a leader
 * again, which takes seconds. The server says only "Authorization
 * Violation", so refusals end the session only when there have been this
 * many in a row, for at least the refusedFor option of create (default
 * REFUSED_FOR ms).
 */
const MAX_REFUSALS = 3;
const REFUSED_FOR = 20_000;

interface Watch {
  state: GroupState;
  sub?: Subscription;
  subject?: string;
  refreshing?: Promise<void>;
  refreshAgain: boolean;
}

const PREFIX = "tally.v1";

/** create makes a chat object; call login before anything else. */
export function create(options: CreateOptions): Chat {
  return new Chat(options);
}

/**
 * Chat is the seed's chat object: login, logout, the four group counter
 * calls and their events.
 */
export class Chat {
  private readonly opts: Required<Omit<CreateOptions, "connectOptions">> & Pick<CreateOptions, "connectOptions">;
  private readonly listeners = new Map<EventName, Set<Listener<any>>>();
  private readonly watches = new Map<string, Watch>();
  private session?: Session;

  constructor(options: CreateOptions) {
    if (!options || !options.servers || (Array.isArray(options.servers) && options.servers.length === 0)) {
      throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: create needs servers");
    }
    if (options.refusedFor !== undefined && !(typeof options.refusedFor === "number" && options.refusedFor >= 0)) {
      throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: refusedFor must be a number of ms, 0 or more");
    }
    this.opts = {
      servers: options.servers,
      timeout: options.timeout ?? 5000,
      retries: options.retries ?? 5,
      renewBefore: options.renewBefore ?? 5 * 60_000,
      refusedFor: options.refusedFor ?? REFUSED_FOR,
      connectOptions: options.connectOptions,
    };
  }

  /** on adds a listener for an EVENT. */
  on<E extends EventName>(name: E, fn: Listener<E>): void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
  }

  /** off removes a listener added with on. */
  off<E extends EventName>(name: E, fn: Listener<E>): void {
    this.listeners.get(name)?.delete(fn);
  }

  /**
   * login connects as userID with the signature the app's back end minted
   * for that user. It rejects with 10004 for a signature of another user or
   * an expired one (checked before connecting), 10007 when the server
   * refuses the signature, 10002 when no server answers.
   */
  async login(options: { userID: string; userSig: string }): Promise<Response<{}>> {
    const userID = checkUserID(options?.userID);
    const claims = readUserSig(options?.userSig, userID);
    if (this.session) await this.logout();
    const s = { userID, userSig: options.userSig, claims, connected: true, ended: false, refusals: 0, timers: [], inflight: new Set() } as unknown as Session;
    s.back = Promise.resolve();
    s.reconnected = () => {};
    try {
      s.nc = await wsconnect({
        servers: this.opts.servers,
        authenticator: tokenAuthenticator(() => s.userSig),
        inboxPrefix: `_INBOX_${userID}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
        // The SDK decides when refusals end the session (MAX_REFUSALS, refusedFor).
        ignoreAuthErrorAbort: true,
        // A dial that reached a stopping node gives up as a call would.
        timeout: this.opts.timeout,
        ...this.opts.connectOptions,
      });
    } catch (err) {
      if (err instanceof natsErrors.AuthorizationError || err instanceof natsErrors.UserAuthenticationExpiredError) {
        throw new TallyError(CODE.NOT_ALLOWED, `not allowed: the server refused the signature: ${message(err)}`);
      }
      throw new TallyError(CODE.INTERNAL, `internal error: cannot connect: ${message(err)}`);
    }
    this.session = s;
    this.schedule(s);
    void this.watchStatus(s);
    return { code: 0, data: {} };
  }

  /** logout closes the connection and forgets the watched groups. */
  async logout(): Promise<Response<{}>> {
    const s = this.session;
    if (s) await this.end(s);
    return { code: 0, data: {} };
  }

  /**
   * renewUserSig hands over a fresh signature for the logged-in user (see
   * USER_SIG_EXPIRING). The SDK reconnects with it, so that the server's
   * limit on the connection moves to the new expiry.
   */
  async renewUserSig(userSig: string): Promise<Response<{}>> {
    const s = this.live();
    s.claims = readUserSig(userSig, s.userID);
    s.userSig = userSig;
    this.schedule(s);
    await s.nc.reconnect();
    return { code: 0, data: {} };
  }

  /** setGroupCounters sets counters to the given values: data.counters. */
  async setGroupCounters(options: { groupID: string; counters: Record<string, number> }): Promise<Response<{ groupID: string; counters: Record<string, number> }>> {
    const groupID = checkGroupID(options?.groupID);
    const counters = checkCounters(options.counters);
    return this.call("set", groupID, { groupID, counters }, true);
  }

  /** increaseGroupCounter adds value to key: data is {groupID, key, value} with the value after. */
  async increaseGroupCounter(options: { groupID: string; key: string; value: number }): Promise<Response<{ groupID: string; key: string; value: number }>> {
    return this.change("increase", options);
  }

  /** decreaseGroupCounter subtracts value from key: data is {groupID, key, value} with the value after. */
  async decreaseGroupCounter(options: { groupID: string; key: string; value: number }): Promise<Response<{ groupID: string; key: string; value: number }>> {
    return this.change("decrease", options);
  }

  /** getGroupCounters gets the listed keys, or every key: data.counters. */
  async getGroupCounters(options: { groupID: string; keyList?: string[] }): Promise<Response<{ groupID: string; counters: Record<string, number> }>> {
    const groupID = checkGroupID(options?.groupID);
    const keyList = checkKeyList(options.keyList);
    const reply = await this.call<{ groupID: string; counters: Record<string, number>; seq: number }>(
      "get", groupID, keyList ? { groupID, keyList } : { groupID }, false);
    return { code: 0, data: { groupID: reply.data.groupID, counters: reply.data.counters } };
  }

  private async change(op: "increase" | "decrease", options: { groupID: string; key: string; value: number }) {
    const groupID = checkGroupID(options?.groupID);
    const key = checkKey(options.key);
    const value = checkValue(options.value, "value", 0);
    return this.call<{ groupID: string; key: string; value: number }>(op, groupID, { groupID, key, value }, true);
  }

  // call watches the group, then sends the request, a write with a request
  // ID of its own that every attempt repeats, so that the server applies it
  // once however often it is sent.
  private async call<T>(op: string, groupID: string, body: Record<string, unknown>, write: boolean): Promise<Response<T>> {
    const s = this.live();
    this.watch(s, groupID);
    if (write) body.requestID = nuid.next();
    return { code: 0, data: await this.request<T>(s, op, body) };
  }

  // request sends one request, trying again (with the same payload) after
  // a timeout, a 10002 or a lost connection, at most retries times.
  private async request<T>(s: Session, op: string, body: unknown): Promise<T> {
    const subject = `${PREFIX}.user.${s.userID}.${op}`;
    const payload = JSON.stringify(body);
    let last: unknown;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      if (s.ended) throw new TallyError(CODE.INTERNAL, `internal error: ${op} not answered: the session ended (logout or kicked out)`);
      // A node that restarts takes connections before it serves: back off
      // (0.25 s, 0.5 s, 1 s, then 2 s) rather than spend the attempts on
      // its "no responders".
      if (attempt > 0) await delay(Math.min(250 * 2 ** (attempt - 1), 2000));
      if (!s.connected) await Promise.race([s.back, delay(this.opts.timeout)]);
      let abort!: (err: Error) => void;
      const lost = new Promise<never>((_, reject) => (abort = reject));
      s.inflight.add(abort);
      try {
        const msg = await Promise.race([s.nc.request(subject, payload, { timeout: this.opts.timeout }), lost]);
        return reply<T>(msg);
      } catch (err) {
        if (err instanceof TallyError && err.code !== CODE.INTERNAL) throw err;
        if (err instanceof natsErrors.PermissionViolationError) {
          throw new TallyError(CODE.NOT_ALLOWED, `not allowed: ${message(err)}`);
        }
        last = err;
      } finally {
        s.inflight.delete(abort);
      }
    }
    if (last instanceof TallyError) throw last;
    throw new TallyError(CODE.INTERNAL, `internal error: no reply to ${op} after ${this.opts.retries + 1} attempts: ${message(last)}`);
  }

  private live(): Session {
    const s = this.session;
    if (!s || s.ended) throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: not logged in: call login first");
    return s;
  }

  // watch starts watching a group the app used: its updates, and a get for
  // the baseline they follow.
  private watch(s: Session, groupID: string): void {
    if (this.watches.has(groupID)) return;
    const w: Watch = { state: new GroupState(groupID), refreshAgain: false };
    this.watches.set(groupID, w);
    this.subscribe(s, w, `${PREFIX}.updates.${groupID}`);
    void this.refresh(s, w, false);
  }

  private subscribe(s: Session, w: Watch, subject: string): void {
    if (w.subject === subject && w.sub && !w.sub.isClosed()) return;
    w.sub?.unsubscribe();
    w.subject = subject;
    w.sub = s.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return; // a permission refused: the group's get says why
        let u: CounterUpdate;
        try {
          u = msg.json<CounterUpdate>();
        } catch {
          return;
        }
        if (u.groupID !== w.state.groupID || typeof u.seq !== "number" || typeof u.value !== "number") return;
        const { emit, gap } = w.state.update(u);
        if (emit) this.emit(EVENT.GROUP_COUNTER_UPDATED, { groupID: u.groupID, key: u.key, value: u.value, seq: u.seq, ...(u.deleted ? { deleted: true as const } : {}) });
        if (gap) void this.refresh(s, w, true);
      },
    });
  }

  // refresh gets every counter of a watched group and tells the app of those
  // that changed since it last knew them; it follows the group onto its
  // members-only subject when the get says so. One runs at a time per group.
  private async refresh(s: Session, w: Watch, emit: boolean): Promise<void> {
    if (w.refreshing) {
      w.refreshAgain = true;
      return w.refreshing;
    }
    w.refreshing = (async () => {
      do {
        w.refreshAgain = false;
        const got = await this.baselineGet(s, w.state.groupID);
        if (!got || s.ended || this.watches.get(w.state.groupID) !== w) return;
        // A members-only group's updates: the service publishes them on
        // tally.v1.updates.<g>.members, and the end users' account imports
        // them to a subject outside updates.* (a grant of updates.* would
        // also let a user subscribe to updates.>). Subscribing again here
        // also revives a subscription the server refused before the user
        // became a member.
        w.state.members ||= got.members === true;
        this.subscribe(s, w, w.state.members ? `${PREFIX}.member-updates.${w.state.groupID}` : `${PREFIX}.updates.${w.state.groupID}`);
        for (const u of w.state.baseline(got.counters, got.seq, emit)) this.emit(EVENT.GROUP_COUNTER_UPDATED, u);
      } while (w.refreshAgain);
    })().finally(() => (w.refreshing = undefined));
    return w.refreshing;
  }

  // baselineGet gets a group for a refresh; a refusal (10007 for a
  // non-member, 2996 when the app spent the user's gets) leaves the group
  // as it was: the next reconnect refreshes it again.
  private async baselineGet(s: Session, groupID: string) {
    for (let i = 0; i < 3 && !s.ended; i++) {
      try {
        return await this.request<{ counters: Record<string, number>; seq: number; members?: boolean }>(s, "get", { groupID });
      } catch (err) {
        if (!(err instanceof TallyError) || err.code !== CODE.RATE_LIMITED) return undefined;
        await delay(1000);
      }
    }
    return undefined;
  }

  // watchStatus follows the connection: it marks it lost and back, refreshes
  // every watched group after a reconnect, and ends the session when the
  // server refuses the signature or its time is up.
  private async watchStatus(s: Session): Promise<void> {
    for await (const st of s.nc.status()) {
      if (s.ended) return;
      switch (st.type) {
        case "disconnect":
          if (!s.connected) break;
          s.connected = false;
          s.back = new Promise((resolve) => (s.reconnected = resolve));
          abortAll(s, "connection lost");
          break;
        case "reconnect":
          s.connected = true;
          s.refusals = 0;
          s.refusedSince = undefined;
          s.reconnected();
          for (const w of this.watches.values()) void this.refresh(s, w, true);
          break;
        case "error":
          if (st.error instanceof natsErrors.UserAuthenticationExpiredError) {
            await this.kick(s, KICKED_OUT_TYPE.USERSIG_EXPIRED, message(st.error));
          } else if (st.error instanceof natsErrors.AuthorizationError && refusedForGood(s, this.opts.refusedFor)) {
            await this.kick(s, KICKED_OUT_TYPE.AUTH_REFUSED, message(st.error));
          }
          break;
      }
    }
  }

  // schedule sets the timers of the signature: USER_SIG_EXPIRING before its
  // expiry, KICKED_OUT at it (the server ends the connection then too).
  private schedule(s: Session): void {
    s.timers.forEach(clearTimeout);
    const expiresAt = s.claims.exp * 1000;
    const now = Date.now();
    const lifetime = expiresAt - (s.claims.iat ? s.claims.iat * 1000 : now);
    const notice = Math.min(this.opts.renewBefore, Math.max(0, lifetime / 2));
    s.timers = [];
    at(s.timers, expiresAt - notice, () => this.emit(EVENT.USER_SIG_EXPIRING, { userID: s.userID, expiresAt }));
    at(s.timers, expiresAt, () => void this.kick(s, KICKED_OUT_TYPE.USERSIG_EXPIRED, "the signature expired"));
  }

  private async kick(s: Session, type: KickedOutType, why: string): Promise<void> {
    if (s.ended) return;
    await this.end(s);
    this.emit(EVENT.KICKED_OUT, { type, message: why });
  }

  private async end(s: Session): Promise<void> {
    if (s.ended) return;
    s.ended = true;
    s.timers.forEach(clearTimeout);
    abortAll(s, "logged out");
    s.reconnected();
    if (this.session === s) {
      this.session = undefined;
      this.watches.clear();
    }
    await s.nc.close().catch(() => {});
  }

  private emit<E extends EventName>(name: E, data: EventData[E]): void {
    for (const fn of [...(this.listeners.get(name) ?? [])]) {
      try {
        fn({ name, data });
      } catch (err) {
        queueMicrotask(() => { throw err; }); // a listener's error is the app's, not the SDK's
      }
    }
  }
}

// reply turns a reply into its data or a TallyError with the contract's code.
function reply<T>(msg: Msg): T {
  const code = Number(msg.headers?.get("Nats-Service-Error-Code"));
  let body: any;
  try {
    body = msg.json();
  } catch {
    body = undefined;
  }
  if (code) {
    throw new TallyError(code, typeof body?.message === "string" ? body.message : msg.headers?.get("Nats-Service-Error") ?? "error");
  }
  if (typeof body !== "object" || body === null) throw new TallyError(CODE.INTERNAL, "internal error: a reply that is not JSON");
  return body as T;
}

// at calls fn at time t (ms since the epoch), in steps, since setTimeout
// fires at once for a delay past 2^31-1 ms (24.8 days; a signature may last 30).
function at(timers: ReturnType<typeof setTimeout>[], t: number, fn: () => void): void {
  const wait = t - Date.now();
  const step = Math.min(Math.max(0, wait), 2 ** 31 - 1);
  timers.push(setTimeout(() => (wait > step ? at(timers, t, fn) : fn()), step));
}

// refusedForGood counts one more refused sign-in and reports whether the
// refusals in a row now end the session: MAX_REFUSALS of them, over at
// least refusedFor ms of the monotonic clock (the wall clock may jump).
function refusedForGood(s: Session, refusedFor: number): boolean {
  const now = performance.now();
  s.refusedSince ??= now;
  return ++s.refusals >= MAX_REFUSALS && now - s.refusedSince >= refusedFor;
}

function abortAll(s: Session, why: string): void {
  for (const abort of s.inflight) abort(new Error(why));
  s.inflight.clear();
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
