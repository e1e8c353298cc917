// tally's Web SDK: the seed's chat object (Tencent Cloud Chat's group
// counters) on a NATS WebSocket connection to tally nodes.
export { create, Chat, EVENT, KICKED_OUT_TYPE } from "./chat.js";
export type { CreateOptions, EventData, EventName, KickedOutType, Listener, Response } from "./chat.js";
export type { CounterUpdate } from "./group.js";
export { GroupState } from "./group.js";
export { CODE, TallyError } from "./errors.js";
export type { UserSigClaims } from "./usersig.js";
