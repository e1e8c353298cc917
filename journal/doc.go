// Package journal appends group events to a JetStream stream, one subject per
// group (tally.journal.<group>), and reads them back: the last event of a
// group, an event by sequence, and the whole journal in commit order.
//
// The journal is the source of truth. Every append is fenced with the
// expected last sequence of the group's subject, so two writers for one group
// can never interleave their events: the stale one gets ErrConflict. Every
// event carries the group's whole state after it, so activating a group reads
// the last message (and the one before, to check it), never a scan of its
// history, and the stream can keep only each group's latest events
// (Config.KeepPerGroup) without losing any group's state.
package journal
