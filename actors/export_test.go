package actors

// Active reports whether the group's actor is activated on this node.
func (n *Node) Active(group string) bool {
	_, ok := n.cluster.PidCache.Get(group, kindGroup)
	return ok
}
