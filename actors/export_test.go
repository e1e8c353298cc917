package actors

// Active reports whether the group's actor is activated on this node.
func (n *Node) Active(group string) bool { return n.groups.active(group) }

// LimiterActive reports whether the user's limiter is activated on this node.
func (n *Node) LimiterActive(user string) bool { return n.limiters.active(user) }
