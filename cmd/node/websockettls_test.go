package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/usersig/usersigtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// wsHandshake opens a WebSocket over TLS to addr from a page of origin and
// returns the HTTP status line of the answer.
func wsHandshake(t *testing.T, addr, origin string, pool *x509.CertPool) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n", addr, origin)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// TestWebSocketTLSAndOrigins serves WebSocket over TLS with
// --websocket-tls-cert and --websocket-tls-key: alice signs in over wss://
// and calls; with --websocket-origins, a page of another origin cannot
// open a WebSocket, and one of the origin given can.
func TestWebSocketTLSAndOrigins(t *testing.T) {
	certFile, certKey, pool := selfSigned(t)
	keyFile, key := usersigtest.KeyFile(t)
	ws := freeAddr(t)
	startProc(t, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--user-sig-key", keyFile,
		"--websocket", ws, "--websocket-tls-cert", certFile, "--websocket-tls-key", certKey,
		"--websocket-origins", "https://app.example.com")
	nc, err := nats.Connect("wss://"+ws, nats.Token(usersigtest.Mint(t, key, "alice", time.Hour)), nats.CustomInboxPrefix("_INBOX_alice"),
		nats.Secure(&tls.Config{RootCAs: pool}), nats.NoReconnect())
	if err != nil {
		t.Fatalf("alice over wss: %v", err)
	}
	defer nc.Close()
	alice, err := client.New(nc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := alice.IncreaseGroupCounter(context.Background(), "room", "likes", 1); err != nil || v != 1 {
		t.Errorf("alice's increase over wss = %d, %v; want 1", v, err)
	}
	if got := wsHandshake(t, ws, "https://evil.example.com", pool); !strings.Contains(got, " 403 ") {
		t.Errorf("a page of another origin: %q, want 403", got)
	}
	if got := wsHandshake(t, ws, "https://app.example.com", pool); !strings.Contains(got, " 101 ") {
		t.Errorf("a page of the origin given: %q, want 101", got)
	}
}
