package actors

// Active reports whether the group's actor is activated on this node.
func (n *Node) Active(group string) bool {
	_, ok := n.cluster.PidCache.Get(group, kindGroup)
	return ok
}

// LimiterActive reports whether the user's limiter is activated on this node.
func (n *Node) LimiterActive(user string) bool {
	_, ok := n.cluster.PidCache.Get(user, kindLimiter)
	return ok
}
