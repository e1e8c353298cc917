// Package actors runs tally's group actors on protoactor-go's local actor
// system: a group actor per active group ID owns the group's counters. A
// sharded registry activates actors by name on their first message and
// stops idle ones without dropping a message; mailboxes and the goroutine
// pool they run on are tally's own. Each user's rate limit is checked where
// its call enters the node, under a lock of the user's shard, before the
// call is handed to its group: a check costs tens of nanoseconds, and an
// actor in its place cost every call a second mailbox hand-off.
//
// A group actor applies commands strictly in arrival order: it decides
// each command on a draft of its state with the steps of Apply (the
// function replay uses), appends the changes to the journal, and only after
// the journal acknowledged them makes the draft its state, replies and
// publishes the updates. Commands that arrive while an append is in flight
// go into the next append together (group commit), each with its own
// reply. The outcomes of writes with request IDs go into the node's
// dedupe table, so a retry is answered with its first outcome.
//
// The journal decides who may write a group: every append is fenced with
// the sequence of the group's last event, and an actor whose append is
// refused reloads the group and retries its pending commands.
package actors
