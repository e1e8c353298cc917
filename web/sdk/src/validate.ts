// The contract's rules for IDs, keys and values (docs/API.md, "Identity"),
// checked before a request is sent so that a bad argument gets the code the
// server would give without a round trip.
import { CODE, TallyError } from "./errors.js";

const MAX_USER_ID = 32;
const MAX_GROUP_ID = 48;
const MAX_KEY_BYTES = 128;
/** MAX_KEYS is the most counters a group holds, and so a set or a keyList. */
export const MAX_KEYS = 20;

const encoder = new TextEncoder();

// validID reports whether id is 1..max bytes of printable ASCII without
// . * > or white space: one NATS subject token.
function validID(id: unknown, max: number): id is string {
  if (typeof id !== "string" || id.length === 0 || id.length > max) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c <= 0x20 || c > 0x7e || c === 0x2e || c === 0x2a || c === 0x3e) return false;
  }
  return true;
}

export function checkUserID(id: unknown): string {
  if (!validID(id, MAX_USER_ID)) {
    throw new TallyError(CODE.INVALID_PARAMETER,
      `invalid parameter: userID ${quote(id)} must be 1..${MAX_USER_ID} bytes of printable ASCII without . * > or spaces`);
  }
  return id;
}

export function checkGroupID(id: unknown): string {
  if (!validID(id, MAX_GROUP_ID)) {
    throw new TallyError(CODE.INVALID_GROUP_ID,
      `invalid group ID: ${quote(id)} must be 1..${MAX_GROUP_ID} bytes of printable ASCII without . * > or spaces`);
  }
  return id;
}

export function checkKey(key: unknown): string {
  if (typeof key !== "string") {
    throw new TallyError(CODE.INVALID_PARAMETER, `invalid parameter: key must be a string, not ${typeof key}`);
  }
  if (!key.isWellFormed()) {
    throw new TallyError(CODE.INVALID_PARAMETER, `invalid parameter: key ${quote(key)} is not valid Unicode`);
  }
  const n = encoder.encode(key).length;
  if (n === 0 || n > MAX_KEY_BYTES) {
    throw new TallyError(CODE.INVALID_PARAMETER, `invalid parameter: key of ${n} bytes, want 1..${MAX_KEY_BYTES}`);
  }
  for (const ch of key) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) {
      throw new TallyError(CODE.INVALID_PARAMETER, `invalid parameter: key ${quote(key)} has a control character`);
    }
  }
  return key;
}

// checkValue checks a counter value or an amount. Values are JavaScript
// numbers, so they must be safe integers (|v| < 2^53); the server takes any
// int64, but a larger number would not survive JSON in JavaScript.
export function checkValue(v: unknown, what: string, min = -Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw new TallyError(CODE.INVALID_PARAMETER,
      `invalid parameter: ${what} must be an integer from ${min} to ${Number.MAX_SAFE_INTEGER}, not ${quote(v)}`);
  }
  return v;
}

export function checkCounters(counters: unknown): Record<string, number> {
  if (typeof counters !== "object" || counters === null || Array.isArray(counters)) {
    throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: counters must be an object of key: value");
  }
  const entries = Object.entries(counters);
  if (entries.length === 0 || entries.length > MAX_KEYS) {
    throw new TallyError(CODE.INVALID_PARAMETER, `invalid parameter: ${entries.length} counters, want 1..${MAX_KEYS}`);
  }
  const out: Record<string, number> = {};
  for (const [k, v] of entries) out[checkKey(k)] = checkValue(v, `counters[${quote(k)}]`);
  return out;
}

export function checkKeyList(keys: unknown): string[] | undefined {
  if (keys === undefined) return undefined;
  if (!Array.isArray(keys) || keys.length > MAX_KEYS) {
    throw new TallyError(CODE.INVALID_PARAMETER, `invalid parameter: keyList must be an array of at most ${MAX_KEYS} keys`);
  }
  return keys.map(checkKey);
}

function quote(v: unknown): string {
  const s = typeof v === "string" ? JSON.stringify(v) : String(v);
  return s.length > 64 ? s.slice(0, 64) + "..." : s;
}
