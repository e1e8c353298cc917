// Package membership owns who belongs to which group: the member set a
// group holds in memory (Set), the digest that stands for it in the
// journal's events (Hash), and the user -> groups index in the KV bucket
// TALLY_MEMBERSHIP (Index), which sign-in reads to grant a user the
// updates of its groups.
//
// The journal is the truth about a group's members; the index is derived
// from it. A group's actor writes the index around its journal appends so
// that the index never holds a user the journal does not: an add's entries
// after its append, a remove's before it. A retried add or remove writes
// them again, so a crash between the two heals on retry.
package membership
