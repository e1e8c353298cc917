package signin

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/contract"
)

// grant is what a signed-in user may do.
type grant struct {
	user    string
	groups  []string // members-only groups whose updates the user may read
	expires time.Time
}

// userClaims are the grant as the NATS user JWT of the callout's answer,
// for the user key the server chose (userNkey), in account.
func (g grant) userClaims(userNkey, account, prefix string) *jwt.UserClaims {
	uc := jwt.NewUserClaims(userNkey)
	// Without an operator, the server places the user in the account the
	// audience names.
	uc.Audience = account
	uc.Name = g.user // shown as the connection's user by the server
	uc.Expires = g.expires.Unix()
	// A cluster's servers map a user's call to its partition's subject
	// (contract.UserMapping), on which the permission is checked: only
	// this user's, whatever the partition token.
	uc.Pub.Allow.Add(prefix+".user."+g.user+".>", contract.PartitionedUserSubject(prefix, "*", g.user, ">"))
	uc.Sub.Allow.Add(contract.InboxPrefix(g.user)+".>", prefix+".updates.*")
	for _, group := range g.groups {
		uc.Sub.Allow.Add(contract.MemberUpdatesSubject(prefix, group))
	}
	// nats-server v2.15.2 does not apply a callout user's own payload and
	// subscription limits (it registers the user without its JWT): the
	// account's hold, and the node gives USERS these, for MaxGroups.
	uc.Limits.Payload = MaxPayload
	uc.Limits.Subs = int64(2*len(g.groups) + BaseSubs)
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard, jwt.ConnectionTypeWebsocket)
	return uc
}

// respond encodes the callout's answer to the request for userNkey from
// server: the user's JWT, or a refusal's reason.
func respond(issuer nkeys.KeyPair, userNkey, server, userJWT string, refusal error) (string, error) {
	rc := jwt.NewAuthorizationResponseClaims(userNkey)
	rc.Audience = server
	if refusal != nil {
		rc.Error = refusal.Error()
	} else {
		rc.Jwt = userJWT
	}
	return rc.Encode(issuer)
}

// MaxResponseBytes is the size of the callout's largest answer: a user of
// 32 bytes in MaxGroups groups of 48 bytes under prefix. The server that
// asks must take messages of this size from the service's connection.
func MaxResponseBytes(prefix string) (int, error) {
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		return 0, err
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return 0, err
	}
	userNkey, err := user.PublicKey()
	if err != nil {
		return 0, err
	}
	g := grant{user: strings.Repeat("u", contract.MaxUserIDLen), expires: time.Now().Add(time.Hour)}
	for i := range MaxGroups {
		g.groups = append(g.groups, fmt.Sprintf("%0*d", contract.MaxGroupIDLen, i))
	}
	ujwt, err := g.userClaims(userNkey, DefaultAccount+strings.Repeat("A", 32), prefix).Encode(issuer)
	if err != nil {
		return 0, err
	}
	resp, err := respond(issuer, userNkey, strings.Repeat("N", 64), ujwt, nil)
	if err != nil {
		return 0, err
	}
	// Room for the JWT library's fields to vary (issue times, IDs).
	return len(resp) + 1024, nil
}
