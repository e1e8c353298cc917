// Package node assembles a tally node from its Config: the NATS connection
// (a server embedded in the process, or an existing NATS server or
// cluster), the journal, the actors and the gateway. tally-node and every
// test that needs a whole node start it here, so the tests run what users
// run.
//
// An embedded server keeps the node's journal, its JetStream API and its
// internal subjects in an account of the node's own, ServiceAccount, which
// only the node's in-process connections can enter. Clients live in other
// accounts: ClientAccount without a configuration file, where the node's
// gateway serves as a user of its own; with one, accounts that import the contract's request subjects as
// services and the updates as a stream. No subject a client can publish or
// subscribe to, and no reply subject it names, reaches into ServiceAccount.
package node
