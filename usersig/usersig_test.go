package usersig_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/usersig"
)

// now is the instant the test tokens of testdata are made for.
var now = time.Unix(1_800_000_000, 0)

func testKeys(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pb, err := os.ReadFile("testdata/test.pub")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile("testdata/test.key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := usersig.ParsePublicKey(pb)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := usersig.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

var b64 = base64.RawURLEncoding

// sign signs header and claims as given, with key.
func sign(key ed25519.PrivateKey, header, claims string) string {
	s := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	return s + "." + b64.EncodeToString(ed25519.Sign(key, []byte(s)))
}

func TestMintVerify(t *testing.T) {
	pub, priv := testKeys(t)
	tok, err := usersig.Mint(priv, "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := usersig.Verify(pub, tok, now.Add(59*time.Minute))
	if err != nil {
		t.Fatalf("Verify(Mint(alice, 1h)) = %v", err)
	}
	if c.User != "alice" || !c.Expires.Equal(now.Add(time.Hour)) || !c.IssuedAt.Equal(now) {
		t.Errorf("Verify = %+v, want alice issued at %v, expiring an hour later", c, now)
	}
	if _, err := usersig.Verify(pub, tok, now.Add(time.Hour)); !errors.Is(err, usersig.ErrExpired) {
		t.Errorf("Verify at exp = %v, want ErrExpired", err)
	}
}

func TestMintRefuses(t *testing.T) {
	_, priv := testKeys(t)
	tests := []struct {
		name string
		key  ed25519.PrivateKey
		user string
		ttl  time.Duration
		want error
	}{
		{"bad user", priv, "a.b", time.Hour, contract.ErrInvalidParameter},
		{"empty user", priv, "", time.Hour, contract.ErrInvalidParameter},
		{"ttl over 30 days", priv, "alice", usersig.MaxLifetime + time.Second, usersig.ErrInvalidParameter},
		{"zero ttl", priv, "alice", 0, usersig.ErrInvalidParameter},
		{"no key", nil, "alice", time.Hour, usersig.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := usersig.Mint(tt.key, tt.user, tt.ttl, now); !errors.Is(err, tt.want) {
				t.Errorf("Mint(%q, %v) = %q, %v; want %v", tt.user, tt.ttl, tok, err, tt.want)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	pub, priv := testKeys(t)
	_, other, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good, err := usersig.Mint(priv, "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	hdr := `{"alg":"EdDSA","typ":"JWT"}`
	claims := func(extra string) string {
		return fmt.Sprintf(`{"sub":"alice","aud":"tally","iat":%d,"exp":%d%s}`, now.Unix(), now.Add(time.Hour).Unix(), extra)
	}
	otherKey, err := usersig.Mint(other, "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"other key", otherKey, usersig.ErrBadSignature},
		{"tampered claims", parts[0] + "." + b64.EncodeToString([]byte(strings.Replace(claims(""), "alice", "bob", 1))) + "." + parts[2], usersig.ErrBadSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, 64)), usersig.ErrBadSignature},
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", usersig.ErrAlgorithm},
		{"alg HS256", b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], usersig.ErrAlgorithm},
		{"alg missing", sign(priv, `{"typ":"JWT"}`, claims("")), usersig.ErrAlgorithm},
		{"crit header", sign(priv, `{"alg":"EdDSA","crit":["x"],"x":1}`, claims("")), usersig.ErrMalformed},
		{"typ other", sign(priv, `{"alg":"EdDSA","typ":"JOSE+JSON"}`, claims("")), usersig.ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], usersig.ErrMalformed},
		{"four parts", good + ".x", usersig.ErrMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], usersig.ErrMalformed},
		{"empty", "", usersig.ErrMalformed},
		{"too large", good + strings.Repeat("A", usersig.MaxTokenLen), usersig.ErrTooLarge},
		{"expired", sign(priv, hdr, `{"sub":"alice","aud":"tally","iat":1799990000,"exp":1799999999}`), usersig.ErrExpired},
		{"exp missing", sign(priv, hdr, `{"sub":"alice","aud":"tally","iat":1800000000}`), usersig.ErrMalformed},
		{"exp a string", sign(priv, hdr, `{"sub":"alice","aud":"tally","exp":"1800003600"}`), usersig.ErrMalformed},
		{"exp fractional", sign(priv, hdr, `{"sub":"alice","aud":"tally","exp":1800003600.5}`), usersig.ErrMalformed},
		{"not before", sign(priv, hdr, claims(`,"nbf":1800000060`)), usersig.ErrNotYetValid},
		{"issued in the future", sign(priv, hdr, `{"sub":"alice","aud":"tally","iat":1800000600,"exp":1800003600}`), usersig.ErrNotYetValid},
		{"wrong audience", sign(priv, hdr, `{"sub":"alice","aud":"chat","exp":1800003600}`), usersig.ErrWrongAudience},
		{"no audience", sign(priv, hdr, `{"sub":"alice","exp":1800003600}`), usersig.ErrWrongAudience},
		{"two audiences", sign(priv, hdr, `{"sub":"alice","aud":["tally","chat"],"exp":1800003600}`), usersig.ErrWrongAudience},
		{"user with a dot", sign(priv, hdr, `{"sub":"a.b","aud":"tally","exp":1800003600}`), usersig.ErrBadUserID},
		{"user wildcard", sign(priv, hdr, `{"sub":">","aud":"tally","exp":1800003600}`), usersig.ErrBadUserID},
		{"user too long", sign(priv, hdr, `{"sub":"`+strings.Repeat("a", 33)+`","aud":"tally","exp":1800003600}`), usersig.ErrBadUserID},
		{"no user", sign(priv, hdr, `{"aud":"tally","exp":1800003600}`), usersig.ErrMalformed},
		{"duplicate sub", sign(priv, hdr, `{"sub":"alice","sub":"bob","aud":"tally","exp":1800003600}`), usersig.ErrMalformed},
		{"sub twice in two cases", sign(priv, hdr, `{"sub":"alice","Sub":"bob","aud":"tally","exp":1800003600}`), usersig.ErrMalformed},
		{"sub in upper case", sign(priv, hdr, `{"SUB":"bob","aud":"tally","exp":1800003600}`), usersig.ErrMalformed},
		{"lifetime over 30 days", sign(priv, hdr, `{"sub":"alice","aud":"tally","iat":1800000000,"exp":1802592001}`), usersig.ErrLifetimeTooLong},
		{"no iat, exp over 30 days away", sign(priv, hdr, `{"sub":"alice","aud":"tally","exp":1802592001}`), usersig.ErrLifetimeTooLong},
		{"claims not an object", sign(priv, hdr, `["alice"]`), usersig.ErrMalformed},
		{"trailing data", sign(priv, hdr, claims("")+"{}"), usersig.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := usersig.Verify(pub, tt.token, now)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	pub, priv := testKeys(t)
	hdr := `{"alg":"EdDSA","typ":"JWT"}`
	tests := []struct{ name, header, claims string }{
		{"no typ", `{"alg":"EdDSA"}`, `{"sub":"alice","aud":"tally","iat":1800000000,"exp":1800003600}`},
		{"no iat", hdr, `{"sub":"alice","aud":"tally","exp":1800003600}`},
		{"aud array", hdr, `{"sub":"alice","aud":["tally"],"exp":1800003600}`},
		{"nbf passed", hdr, `{"sub":"alice","aud":"tally","nbf":1799999000,"exp":1800003600}`},
		{"exactly 30 days", hdr, `{"sub":"alice","aud":"tally","iat":1800000000,"exp":1802592000}`},
		{"other claims", hdr, `{"sub":"@TGS#x","aud":"tally","exp":1800003600,"jti":"1","iss":"app"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := usersig.Verify(pub, sign(priv, tt.header, tt.claims), now); err != nil {
				t.Errorf("Verify(%s.%s) = %v", tt.header, tt.claims, err)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	pub, priv, err := usersig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pp, err := usersig.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := usersig.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := usersig.ParsePublicKey(pp); err != nil || !got.Equal(pub) {
		t.Errorf("ParsePublicKey(MarshalPublicKey) = %v, %v", got, err)
	}
	if got, err := usersig.ParsePrivateKey(kp); err != nil || !got.Equal(priv) {
		t.Errorf("ParsePrivateKey(MarshalPrivateKey) = %v, %v", got, err)
	}
	if _, err := usersig.ParsePublicKey(kp); !errors.Is(err, usersig.ErrInvalidKey) {
		t.Errorf("ParsePublicKey(a private key) = %v, want ErrInvalidKey", err)
	}
	if _, err := usersig.ParsePrivateKey(pp); !errors.Is(err, usersig.ErrInvalidKey) {
		t.Errorf("ParsePrivateKey(a public key) = %v, want ErrInvalidKey", err)
	}
	if _, err := usersig.ParsePublicKey([]byte("not PEM")); !errors.Is(err, usersig.ErrInvalidKey) {
		t.Errorf("ParsePublicKey(not PEM) = %v, want ErrInvalidKey", err)
	}
}

// reasons are every error Verify may wrap.
var reasons = []error{usersig.ErrMalformed, usersig.ErrAlgorithm, usersig.ErrBadSignature, usersig.ErrExpired,
	usersig.ErrNotYetValid, usersig.ErrWrongAudience, usersig.ErrBadUserID, usersig.ErrLifetimeTooLong, usersig.ErrTooLarge}

// FuzzVerify checks that Verify never panics, refuses with one of its
// reasons, and accepts only what the rules allow. Its seeds (testdata)
// include forged, expired, other-key, alg none, HS256 and huge tokens.
func FuzzVerify(f *testing.F) {
	pub, priv := testKeys(f)
	good, err := usersig.Mint(priv, "alice", time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := usersig.Verify(pub, token, now)
		if err != nil {
			for _, r := range reasons {
				if errors.Is(err, r) {
					return
				}
			}
			t.Fatalf("Verify(%q) = %v, not one of the package's reasons", token, err)
		}
		if len(token) > usersig.MaxTokenLen || contract.CheckUserID(c.User) != nil || !now.Before(c.Expires) ||
			c.Expires.Sub(now) > usersig.MaxLifetime || strings.Count(token, ".") != 2 {
			t.Fatalf("Verify(%q) accepted %+v", token, c)
		}
		parts := strings.Split(token, ".")
		sig, _ := b64.DecodeString(parts[2])
		if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatalf("Verify(%q) accepted a token the key did not sign", token)
		}
	})
}
