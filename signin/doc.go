// Package signin is tally's NATS auth callout (ADR-26): it signs end users
// in with their user signature (package usersig) and grants each exactly
// what one person needs. It owns the grants, the per-user connection cap,
// the closing of a user's connections across a cluster (Disconnect, and
// Ban for a while after her abuse: a flood, sign-ins that go on at her
// cap, a subscription to every open group's updates, which it looks for).
//
// The NATS server asks, on $SYS.REQ.USER.AUTH in the callout account, about
// every client that its own users and accounts do not let in; the service
// takes the client's token (connect_opts.auth_token), verifies it, and
// answers with a user JWT signed by the issuer the server trusts: account
// Config.Account, publish tally.v1.user.<id>.>, subscribe _INBOX_<id>.>,
// the open groups' updates and the updates of each group the user is a
// member of, expiring with the signature.
package signin
