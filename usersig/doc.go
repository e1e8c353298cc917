// Package usersig mints and verifies user signatures: the short-lived
// tokens with which an end user signs in to tally. A signature is a compact
// JWS (a JWT) signed with Ed25519: header {"alg":"EdDSA","typ":"JWT"},
// claims {"sub":"<user ID>","aud":"tally","iat":<unix s>,"exp":<unix s>}
// ("nbf" optional), each part base64url without padding.
//
// The chat app's back end holds the private key and mints; nodes hold only
// the public key and verify, so nothing on a node lets anyone mint a
// sign-in. Verification is strict: EdDSA only, audience tally, a valid user
// ID, an expiry in the future at most MaxLifetime after the token's start,
// at most MaxTokenLen bytes.
package usersig
