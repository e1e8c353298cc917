package journal

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// errEcho means the journal's connection would deliver its own appends to
// a watcher.
var errEcho = errors.New("journal: watching other writers needs a connection made with nats.NoEcho")

// WatchOthers calls fn with the group of every event that another writer
// than this journal stores: a tool, an operator or a forger with access to
// the journal's account. The journal's connection must be made with
// nats.NoEcho, so that the journal's own appends never reach fn. fn runs
// on the subscription's goroutine. Unsubscribe the subscription to stop.
func (j *Journal) WatchOthers(fn func(group string)) (*nats.Subscription, error) {
	nc := j.js.Conn()
	if !nc.Opts.NoEcho {
		return nil, errEcho
	}
	all := j.cfg.SubjectPrefix + ".>"
	sub, err := nc.Subscribe(all, func(m *nats.Msg) {
		if group, ok := j.Group(m.Subject); ok {
			fn(group)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("journal: watch %s: %w", all, err)
	}
	// Events of other writers are few; none may be dropped.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, errors.Join(fmt.Errorf("journal: watch: %w", err), sub.Unsubscribe())
	}
	if err := nc.Flush(); err != nil {
		return nil, errors.Join(fmt.Errorf("journal: watch: %w", err), sub.Unsubscribe())
	}
	return sub, nil
}
