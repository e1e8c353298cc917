// Package actors runs tally's virtual actors on protoactor-go's cluster: a
// group actor per group ID that owns the group's counters, and a limiter
// actor per user that gates the user's calls.
//
// A group actor applies commands strictly in arrival order: it validates a
// command against the state the commands before it leave, turns it into a
// change, appends the changes to the journal, and only after the journal
// acknowledged them applies them with Apply (the function replay uses),
// replies and publishes the updates. Commands that arrive while an append is
// in flight go into the next append together (group commit), each with its
// own reply.
//
// The journal, not the cluster, decides who may write a group: every append
// is fenced with the sequence of the group's last event, and an actor whose
// append is refused reloads the group and retries its pending commands.
package actors
