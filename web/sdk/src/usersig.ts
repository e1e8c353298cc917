// A user signature is a JWT signed by the app's back end (docs/API.md,
// "User signatures"). The SDK cannot verify it (it has no key) but reads its
// claims: whose it is, and when it expires.
import { CODE, TallyError } from "./errors.js";

/** UserSigClaims are the claims the SDK reads from a user signature. */
export interface UserSigClaims {
  sub: string;
  exp: number;
  iat?: number;
}

export function readUserSig(userSig: unknown, userID: string): UserSigClaims {
  if (typeof userSig !== "string" || userSig.length > 1024) {
    throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: userSig must be a signature string of at most 1 KiB");
  }
  const parts = userSig.split(".");
  let claims: unknown;
  try {
    if (parts.length !== 3) throw new Error("not three parts");
    claims = JSON.parse(base64url(parts[1]!));
  } catch {
    throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: userSig is not a signature (a JWT)");
  }
  const c = claims as Partial<UserSigClaims>;
  if (typeof c !== "object" || c === null || typeof c.sub !== "string" || typeof c.exp !== "number") {
    throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: userSig has no sub or exp");
  }
  if (c.sub !== userID) {
    throw new TallyError(CODE.INVALID_PARAMETER,
      `invalid parameter: userSig is for user ${JSON.stringify(c.sub)}, not ${JSON.stringify(userID)}`);
  }
  if (c.exp * 1000 <= Date.now()) {
    throw new TallyError(CODE.INVALID_PARAMETER, "invalid parameter: userSig has expired");
  }
  return { sub: c.sub, exp: c.exp, ...(typeof c.iat === "number" ? { iat: c.iat } : {}) };
}

function base64url(s: string): string {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
}
