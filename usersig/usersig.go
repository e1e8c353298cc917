package usersig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally/contract"
)

// Limits of a user signature.
const (
	// Audience is the only "aud" a signature may carry.
	Audience = "tally"
	// MaxLifetime is the longest a signature may be valid: from its "iat"
	// (or, without one, from when it is verified) to its "exp".
	MaxLifetime = 30 * 24 * time.Hour
	// MaxTokenLen is the longest token Verify reads.
	MaxTokenLen = 1024
	// Skew is how far in the future a signature's "iat" may lie, for the
	// clocks of the back end that mints and the node that verifies.
	Skew = time.Minute
)

// header is the one header Mint writes.
const header = `{"alg":"EdDSA","typ":"JWT"}`

var b64 = base64.RawURLEncoding

// Claims are what a verified signature says.
type Claims struct {
	// User is the user ID the signature signs in.
	User string
	// IssuedAt is zero when the token has no "iat", NotBefore when it has
	// no "nbf".
	IssuedAt, NotBefore time.Time
	Expires             time.Time
}

// Mint signs a signature for user valid from now for ttl (at most
// MaxLifetime).
func Mint(key ed25519.PrivateKey, user string, ttl time.Duration, now time.Time) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("mint: %w: private key of %d bytes", ErrInvalidKey, len(key))
	}
	if err := contract.CheckUserID(user); err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	if ttl < time.Second || ttl > MaxLifetime {
		return "", fmt.Errorf("mint: %w: ttl %v, want 1s..%v", ErrInvalidParameter, ttl, MaxLifetime)
	}
	claims, err := json.Marshal(struct {
		Sub string `json:"sub"`
		Aud string `json:"aud"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}{user, Audience, now.Unix(), now.Add(ttl).Unix()})
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	signed := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString(claims)
	return signed + "." + b64.EncodeToString(ed25519.Sign(key, []byte(signed))), nil
}

// Verify checks token with key at now and returns its claims. A refusal
// wraps one of the package's errors, which says why.
func Verify(key ed25519.PublicKey, token string, now time.Time) (Claims, error) {
	if len(key) != ed25519.PublicKeySize {
		return Claims{}, fmt.Errorf("%w: public key of %d bytes", ErrInvalidKey, len(key))
	}
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(token), MaxTokenLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w: %d parts, want header.claims.signature", ErrMalformed, len(parts))
	}
	if err := checkHeader(parts[0]); err != nil {
		return Claims{}, err
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrMalformed, ed25519.SignatureSize)
	}
	if !ed25519.Verify(key, []byte(parts[0]+"."+parts[1]), sig) {
		return Claims{}, ErrBadSignature
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	c, err := parseClaims(payload)
	if err != nil {
		return Claims{}, err
	}
	return c, c.check(now)
}

// checkHeader accepts {"alg":"EdDSA"} with an optional "typ" of JWT and
// nothing else: no "crit" extensions, no key IDs to trust.
func checkHeader(part string) error {
	raw, err := b64.DecodeString(part)
	if err != nil {
		return fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var h map[string]any
	if err := strictJSON(raw, &h); err != nil {
		return fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if alg, _ := h["alg"].(string); alg != "EdDSA" {
		return fmt.Errorf("%w: alg %s", ErrAlgorithm, contract.Quote(fmt.Sprint(h["alg"])))
	}
	for k, v := range h {
		switch k {
		case "alg":
		case "typ":
			if typ, _ := v.(string); !strings.EqualFold(typ, "JWT") {
				return fmt.Errorf("%w: typ %s", ErrMalformed, contract.Quote(fmt.Sprint(v)))
			}
		default:
			return fmt.Errorf("%w: header field %s", ErrMalformed, contract.Quote(k))
		}
	}
	return nil
}

// rawClaims are the claims as JSON has them.
type rawClaims struct {
	Sub *string         `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Iat json.RawMessage `json:"iat"`
	Nbf json.RawMessage `json:"nbf"`
	Exp json.RawMessage `json:"exp"`
}

func parseClaims(payload []byte) (Claims, error) {
	var r rawClaims
	if err := strictJSON(payload, &r); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if r.Sub == nil {
		return Claims{}, fmt.Errorf("%w: no sub", ErrMalformed)
	}
	if err := contract.CheckUserID(*r.Sub); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrBadUserID, err)
	}
	if !audienceIsTally(r.Aud) {
		return Claims{}, fmt.Errorf("%w: aud %s", ErrWrongAudience, contract.Quote(string(r.Aud)))
	}
	c := Claims{User: *r.Sub}
	var err error
	if r.Exp == nil {
		return Claims{}, fmt.Errorf("%w: no exp", ErrMalformed)
	}
	if c.Expires, err = unixTime("exp", r.Exp); err != nil {
		return Claims{}, err
	}
	if r.Iat != nil {
		if c.IssuedAt, err = unixTime("iat", r.Iat); err != nil {
			return Claims{}, err
		}
	}
	if r.Nbf != nil {
		if c.NotBefore, err = unixTime("nbf", r.Nbf); err != nil {
			return Claims{}, err
		}
	}
	return c, nil
}

// audienceIsTally accepts "tally" and ["tally"].
func audienceIsTally(raw json.RawMessage) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == Audience
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && len(many) == 1 && many[0] == Audience
}

// unixTime reads a NumericDate of whole seconds: a JSON number, not a
// string.
func unixTime(name string, n json.RawMessage) (time.Time, error) {
	s, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || s < 0 || s > 1<<40 {
		return time.Time{}, fmt.Errorf("%w: %s %s is not a time in whole seconds", ErrMalformed, name, contract.Quote(string(n)))
	}
	return time.Unix(s, 0), nil
}

// check checks the claims' times at now.
func (c Claims) check(now time.Time) error {
	if !now.Before(c.Expires) {
		return fmt.Errorf("%w at %s", ErrExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Before(c.NotBefore) {
		return fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	start := now
	if !c.IssuedAt.IsZero() {
		if c.IssuedAt.After(now.Add(Skew)) {
			return fmt.Errorf("%w: iat %s", ErrNotYetValid, c.IssuedAt.UTC().Format(time.RFC3339))
		}
		start = c.IssuedAt
	}
	if c.Expires.Sub(start) > MaxLifetime {
		return fmt.Errorf("%w: %v, at most %v", ErrLifetimeTooLong, c.Expires.Sub(start), MaxLifetime)
	}
	return nil
}

// strictJSON decodes one JSON object, numbers as json.Number, refusing
// trailing data and duplicate keys (where two readers of one token could
// disagree on what it says).
func strictJSON(data []byte, v any) error {
	if err := noDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the object")
	}
	return nil
}

// registered are the names the verifier reads. Go's decoder matches
// names regardless of case, which other JWT readers do not: a "Sub" next
// to a "sub" would name another user for one reader than for the other.
var registered = map[string]bool{"alg": true, "typ": true, "sub": true, "aud": true, "iat": true, "nbf": true, "exp": true}

// noDuplicateKeys refuses a top-level object that names a key twice, in
// any case, or that writes a registered name in another case.
func noDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not an object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		lower := strings.ToLower(key)
		if seen[lower] {
			return fmt.Errorf("key %s twice", contract.Quote(key))
		}
		if registered[lower] && key != lower {
			return fmt.Errorf("key %s: claim and header names are lower case", contract.Quote(key))
		}
		seen[lower] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}
