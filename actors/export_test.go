package actors

// Active reports whether the group's actor is activated on this node.
func (n *Node) Active(group string) bool { return n.groups.active(group) }

// LimiterActive reports whether the node holds a rate-limit record of the
// user.
func (n *Node) LimiterActive(user string) bool { return n.limits.known(user) }

// active reports whether name has a live actor.
func (r *registry) active(name string) bool {
	s := r.shard(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.live[name]
	return ok
}

// Remembered reports whether the node holds the group in memory, as an
// actor or as a snapshot.
func (n *Node) Remembered(group string) bool {
	s := n.groups.shard(group)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.entries[group]
	return ok
}
