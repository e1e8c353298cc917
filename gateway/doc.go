// Package gateway serves tally's NATS request/reply contract and publishes
// counter updates.
//
// Each endpoint is a queue subscription in group "tally". Its handler
// decodes a request (JSON, or protobuf when the Content-Type header says
// application/protobuf) and submits it to the actors without waiting; the
// actor that finishes it calls back, and the reply is published from the
// actor's goroutine, so one slow group holds up no other request. At most
// Config.MaxInFlight requests are in flight. Errors become the contract's
// codes through actors.Code, in the micro service error headers and an
// {"code","message"} body.
//
// The admin history endpoint (Config.History) reads the journal on a
// goroutine of its own, at most a few at once, and is never forwarded.
//
// The gateway answers the micro protocol's $SRV.PING, $SRV.INFO and
// $SRV.STATS itself, with statistics counted when each reply is sent.
package gateway
