package signin

import "errors"

// Reasons a sign-in is refused besides the signature's own (usersig).
var (
	ErrNoToken            = errors.New("no user signature: connect with it as the token")
	ErrNotClient          = errors.New("only client connections sign in with a user signature")
	ErrTooManyConnections = errors.New("too many connections of this user")
	ErrTooManyGroups      = errors.New("member of more groups than a sign-in can grant")
	ErrMembersUnavailable = errors.New("the user's groups could not be read")
	ErrInvalidConfig      = errors.New("invalid sign-in configuration")
	ErrBanned             = errors.New("signing in refused for a while: the user flooded the node, subscribed to every group's updates, or kept signing in past her connection cap")
)
