// Package nodetest holds what tests and the benchmark need to run tally
// nodes whose journal they can read.
package nodetest

// OpsConfig is an embedded server configuration, after a listen line:
// clients enter APP without credentials and reach the service by imports
// from TALLY, and the operator user ops/ops enters TALLY, where the
// journal and the cluster's buckets are.
const OpsConfig = `
accounts {
  TALLY: {
    jetstream: enabled
    users: [{user: ops, password: ops}]
    exports: [
      {service: "tally.v1.user.>", response: singleton}
      {service: "tally.v1.admin.>", response: singleton}
      {service: "$SRV.>", response: stream}
      {stream: "tally.v1.updates.>"}
    ]
  }
  APP: {
    users: [{user: app, password: app}]
    imports: [
      {service: {account: TALLY, subject: "tally.v1.user.>"}}
      {service: {account: TALLY, subject: "tally.v1.admin.>"}}
      {service: {account: TALLY, subject: "$SRV.>"}}
      {stream: {account: TALLY, subject: "tally.v1.updates.>"}}
    ]
  }
}
no_auth_user: app
`
