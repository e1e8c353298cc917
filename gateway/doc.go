// Package gateway serves tally's NATS request/reply contract as a nats.go
// micro service named "tally" and publishes counter updates.
//
// Each request is decoded (JSON, or protobuf when the Content-Type header
// says application/protobuf), handed to the actors on a goroutine of its
// own so that requests are not serialised through one handler, and answered
// from there. Errors become the contract's codes through actors.Code, in the
// service error headers and an {"code","message"} body.
package gateway
