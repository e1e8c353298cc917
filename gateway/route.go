package gateway

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/messages"
)

// Router places calls on the nodes of a cluster (see package cluster).
type Router interface {
	// Partition returns the partition of a group or user ID.
	Partition(id string) int
	// Place calls fn with "" when partition p is served here (the caller
	// then calls Exit(p) once it answered), with the inbox of the node to
	// forward the call to, or with an error when no node serves p in time.
	Place(p int, fn func(inbox string, err error))
	// PlaceForwarded is Place for a call another node forwarded here to be
	// placed on p: it goes on only to p's holder, waiting for one if none
	// is known, so that a call never bounces between two nodes' guesses.
	PlaceForwarded(p int, fn func(inbox string, err error))
	Exit(p int)
	// Inbox is the subject of the calls forwarded to this node.
	Inbox() string
	// Watch calls fn each time this node becomes, or stops being, the
	// node that partition p's users' calls should reach, first for every
	// partition that is its now, before Watch returns.
	Watch(fn func(p int, here bool))
}

// maxHops bounds how often one call is forwarded: to its user's node,
// then to its group's, and once more each while a partition moves.
const maxHops = 4

// A call in a cluster goes through two places: the node holding its user's
// partition runs the rate limit, and the node holding its group's
// partition runs the command and answers the client. The cluster's
// servers map a user's call to a subject that names its user's partition
// (contract.UserMapping), to which only the node that the partition is
// for subscribes: NATS delivers the call there, which decodes it, admits
// it and forwards the decoded command to the group's node if that is
// another. A call that arrives elsewhere (from an account without the
// mapping, or while a partition moves) is first forwarded, undecoded, to
// its user's node. Each forward keeps the client's reply subject, so the
// serving node answers the client directly. An admin's call has no rate
// limit and goes straight to its group's node.

// route sends a request taken from a client, or forwarded undecoded, on
// its way: to its user's node, or to its group's for an admin's call.
func (g *Gateway) route(r *request, user string, data []byte, hops uint32) {
	if user == "" {
		g.decodeAndPlace(r, "", data, hops)
		return
	}
	router := g.cfg.Router
	p := router.Partition(user)
	place := router.Place
	if hops > 0 { // forwarded here, undecoded, for its user's partition
		place = router.PlaceForwarded
	}
	place(p, func(inbox string, err error) {
		switch {
		case err != nil:
			r.respond(nil, fmt.Errorf("%w: user %s: %w", actors.ErrUnavailable, user, err))
		case inbox != "":
			r.forward(inbox, &messages.Forward{Payload: data}, hops)
		default:
			// A rate limit that moves starts afresh: it needs no lease
			// held for the call's length.
			router.Exit(p)
			if err := g.node.Refused(user, r.op == opGet); err != nil {
				r.respond(nil, err)
				return
			}
			g.decodeAndPlace(r, user, data, hops)
		}
	})
}

// command is a decoded request: exactly one of change, get and list.
type command struct {
	group  string
	change *messages.Change
	get    *messages.GetRequest
	list   *messages.ListMembersRequest
}

// decodeAndPlace decodes and checks a request, runs the user's rate limit
// when it has a user, and places the command on its group's node.
func (g *Gateway) decodeAndPlace(r *request, user string, data []byte, hops uint32) {
	cmd, err := decode(r.op, r.format, user, data)
	switch {
	case err != nil:
	case cmd.change != nil:
		err = actors.ValidateChange(cmd.group, cmd.change)
	case cmd.list != nil:
		err = actors.ValidateList(cmd.list)
	default:
		err = actors.ValidateGet(cmd.get)
	}
	if err != nil {
		r.respond(nil, err)
		return
	}
	if user == "" {
		g.placeGroup(r, user, cmd, hops, false)
		return
	}
	g.node.Admit(user, cmd.get != nil, func(err error) {
		if err != nil {
			r.respond(nil, err)
			return
		}
		g.placeGroup(r, user, cmd, hops, false)
	})
}

// placeGroup runs an admitted command of user ("" for an admin's) on its
// group's node; forwarded: another node forwarded it here for that.
func (g *Gateway) placeGroup(r *request, user string, cmd command, hops uint32, forwarded bool) {
	router := g.cfg.Router
	p := router.Partition(cmd.group)
	place := router.Place
	if forwarded {
		place = router.PlaceForwarded
	}
	place(p, func(inbox string, err error) {
		switch {
		case err != nil:
			r.respond(nil, fmt.Errorf("%w: group %s: %w", actors.ErrUnavailable, cmd.group, err))
		case inbox != "":
			r.forward(inbox, &messages.Forward{Admitted: true, GroupId: cmd.group, Change: cmd.change, Get: cmd.get, List: cmd.list}, hops)
		default:
			r.part = p
			switch {
			case cmd.get != nil:
				g.node.SubmitGetAs(user, cmd.get, r)
			case cmd.list != nil:
				g.node.SubmitList(cmd.list, r)
			default:
				r.group = cmd.group
				g.node.SubmitChange("", cmd.group, cmd.change, r)
			}
		}
	})
}

// replyOf returns the builder of a write's reply.
func replyOf(o op) func(string, *messages.Change) proto.Message {
	switch o {
	case opSet:
		return setReply
	case opDelete:
		return deleteReply
	case opMembersAdd, opMembersRemove:
		return membersReply
	default:
		return changeReply
	}
}

// decode decodes a request of user ("" on the admin subjects) into the
// command it asks for and its group.
func decode(o op, f format, user string, data []byte) (command, error) {
	var r requestFields
	var err error
	if f == formatProto {
		err = r.decodeProto(data, protoShapeOf(o))
	} else {
		err = r.decodeJSON(data, jsonShapeOf(o))
	}
	if err != nil {
		return command{}, err
	}
	return r.command(o, user), nil
}

// forward hands the request on to the node at inbox, which answers the
// client, and frees its slot here.
func (r *request) forward(inbox string, f *messages.Forward, hops uint32) {
	g := r.g
	if hops >= maxHops {
		r.respond(nil, fmt.Errorf("%w: the call was forwarded %d times without reaching the node that serves it; try again", actors.ErrUnavailable, hops))
		return
	}
	f.Subject, f.Reply, f.Protobuf, f.Hops, f.EndUser = r.subject, r.reply, r.format == formatProto, hops+1, r.endUser
	data, err := proto.Marshal(f)
	if err == nil {
		err = g.cfg.Internal.Publish(inbox, data)
	}
	if err != nil {
		r.respond(nil, fmt.Errorf("%w: forward the call: %w", actors.ErrUnavailable, err))
		return
	}
	g.cfg.Metrics.Forwarded(hops + 1)
	<-g.slots
}

// onForward takes a call another node forwarded.
func (g *Gateway) onForward(m *nats.Msg) {
	var f messages.Forward
	if err := proto.Unmarshal(m.Data, &f); err != nil {
		g.cfg.Logger.Warn("ignoring a malformed forwarded call", slog.Any("error", err))
		return
	}
	o, admin, user, ok := g.parse(f.GetSubject())
	if !ok {
		g.cfg.Logger.Warn("ignoring a forwarded call on a subject the service does not serve", slog.String("subject", f.GetSubject()))
		return
	}
	format := formatJSON
	if f.GetProtobuf() {
		format = formatProto
	}
	e, nc := g.byOp[0][o], g.nc
	switch {
	case admin:
		e, nc = g.byOp[1][o], g.admin
	case f.GetEndUser() && g.cfg.EndUsers != nil:
		nc = g.cfg.EndUsers
	case f.GetEndUser():
		g.cfg.Logger.Warn("ignoring an end user's forwarded call: this node serves no end users", slog.String("subject", f.GetSubject()))
		return
	}
	g.slots <- struct{}{} // released by respond or forward
	r := &request{g: g, nc: nc, ep: e, op: o, format: format, subject: f.GetSubject(), reply: f.GetReply(), taken: time.Now(), part: -1, user: user,
		endUser: f.GetEndUser(), forwarded: true}
	cmd := command{group: f.GetGroupId(), change: f.GetChange(), get: f.GetGet(), list: f.GetList()}
	switch {
	case !f.GetAdmitted():
		g.route(r, user, f.GetPayload(), f.GetHops())
	case (cmd.get != nil) != (o == opGet) || (cmd.list != nil) != (o == opMembersList) || (cmd.change != nil) == (cmd.get != nil || cmd.list != nil):
		r.respond(nil, fmt.Errorf("%w: a forwarded call must carry the command its subject names", actors.ErrInvalidParameter))
	default:
		g.placeGroup(r, user, cmd, f.GetHops(), true)
	}
}

// parse reads a request subject of the service: its operation, whether it
// is an admin's, and the user of a user's.
func (g *Gateway) parse(subject string) (o op, admin bool, user string, ok bool) {
	rest, found := strings.CutPrefix(subject, g.cfg.Prefix+".")
	if !found {
		return 0, false, "", false
	}
	kind, rest, _ := strings.Cut(rest, ".")
	switch kind {
	case "admin":
		admin = true
	case "u": // mapped: u.<partition>.<user>.<op>
		_, rest, _ = strings.Cut(rest, ".")
		fallthrough
	case "user":
		user, rest, _ = strings.Cut(rest, ".")
		if user == "" {
			return 0, false, "", false
		}
	default:
		return 0, false, "", false
	}
	for i, name := range opNames {
		if rest == name && op(i) < opHistory && (admin || op(i) < opDelete) {
			return op(i), admin, user, true
		}
	}
	return 0, false, "", false
}
