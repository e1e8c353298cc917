package cluster

// Watch calls fn each time this node becomes, or stops being, the node
// that partition p's calls should reach: p's chosen owner, or its holder
// until it has handed p over. Before Watch returns, fn is called for every
// partition that is this node's now; later calls come from the cluster's
// own goroutine, one at a time. A gateway subscribes to the subjects of
// its partitions' users with it (see contract.UserMapping), so that NATS
// delivers their calls here without a forward. Only one fn is kept.
func (c *Cluster) Watch(fn func(p int, here bool)) {
	c.wmu.Lock()
	c.watcher = fn
	c.watched = make([]bool, len(c.parts))
	c.wmu.Unlock()
	c.notify(c.chosenNames())
}

// chosenNames returns each partition's chosen owner, "" for none, and
// whether Stop began.
func (c *Cluster) chosenNames() (chosen []string, stopped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	chosen = make([]string, len(c.parts))
	for p := range c.parts {
		if r := c.chosen(p); r != nil {
			chosen[p] = r.name
		}
	}
	return chosen, c.stopped
}

// notify tells the watcher of the partitions that became or stopped being
// this node's since it last heard: those it is chosen for, until Stop
// began, and those it holds.
func (c *Cluster) notify(chosen []string, stopped bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.watcher == nil {
		return
	}
	for p := range c.parts {
		here := (chosen[p] == c.cfg.Name && !stopped) || c.parts[p].state.Load() != free
		if here != c.watched[p] {
			c.watched[p] = here
			c.watcher(p, here)
		}
	}
}
