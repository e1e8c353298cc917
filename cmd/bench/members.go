package main

import (
	"fmt"

	"github.com/tallyhq/tally/messages"
)

// hotMembers is the size of w2's hot group in a run with members: the
// load's 20,000 users and others, to measure the check on a large group.
const hotMembers = 100_000

// makeMembers makes every group of a workload members-only, with the
// users the workload has call it as its members (see workload), through
// the admin subjects; not measured.
func (t *tallyClient) makeMembers(workload string) error {
	userIDs := t.ids("u%05d", users)
	byGroup := map[string][]string{}
	// pairs adds the user and group of calls 0, 1, ... up to where they
	// repeat.
	pairs := func(groups []string) {
		for m := range lcm(users, len(groups)) {
			g := groups[m%len(groups)]
			byGroup[g] = append(byGroup[g], userIDs[m%users])
		}
	}
	switch workload {
	case "w1":
		pairs(t.ids("w1-%d", w1Groups))
	case "w2":
		hot := "w2-hot"
		if t.keep != nil {
			hot = t.ids("w2-hot%d", 1)[0]
		}
		byGroup[hot] = userIDs
		for i := len(userIDs); i < hotMembers; i++ {
			byGroup[hot] = append(byGroup[hot], fmt.Sprintf("pad-%06d", i))
		}
	default:
		pairs(t.ids("w3-%d", w3Groups))
	}
	type call struct {
		group string
		users []string
	}
	var calls []call
	for g, us := range byGroup {
		for i := 0; i < len(us); i += 100 {
			calls = append(calls, call{g, us[i:min(i+100, len(us))]})
		}
	}
	res := runN(loaders, uint64(len(calls)), 0, func(w int, i uint64) error {
		c := calls[i]
		return t.call(w, "tally.v1.admin.members.add", &messages.MembersRequest{GroupId: c.group, UserIds: c.users})
	})
	if res.Failed > 0 {
		return fmt.Errorf("members of %s: %d adds failed: %s", workload, res.Failed, res.FirstErr)
	}
	return nil
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
