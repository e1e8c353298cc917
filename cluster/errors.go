package cluster

import "errors"

var (
	// ErrNoOwner means a partition had no node to serve it in time: a node
	// died or left and the lease it held has not expired yet, or the cluster
	// has no members the node can reach.
	ErrNoOwner = errors.New("no node serves the partition now")

	// ErrNameTaken means another live node has this node's name.
	ErrNameTaken = errors.New("another node of the cluster has this name: give each node its own --name")

	// ErrCutOff means this node cannot prove it is a member of its cluster:
	// its heartbeats have not reached the members bucket for longer than a
	// member record lasts, and it does not reach most of the other members.
	ErrCutOff = errors.New("this node is cut off from its cluster")

	// ErrNoLeader means the members bucket takes no heartbeats while this node
	// reaches most of the other members: the bucket's leader is gone (its
	// server died or stopped) and its replicas elect another, which takes
	// seconds in JetStream's raft.
	ErrNoLeader = errors.New("the cluster's members bucket has no leader: it is electing one, and calls resume once it has one")
)
