package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/node"
)

// startExternal runs a NATS server with JetStream configured by modify.
func startExternal(t *testing.T, modify func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	modify(opts)
	return journaltest.Start(t, opts)
}

// TestCredentials runs a node on external servers that want an nkey, a
// token, TLS with a certificate authority of their own, and a client
// certificate: the node connects with the matching credentials and serves.
func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	seed, pub := nkeyFile(t, dir)
	ca, tlsConfig, clientCert, clientKey := testTLS(t, dir)
	mutual := tlsConfig.Clone()
	mutual.ClientAuth, mutual.ClientCAs = tls.RequireAndVerifyClientCert, x509.NewCertPool()
	caPEM, _ := os.ReadFile(ca)
	mutual.ClientCAs.AppendCertsFromPEM(caPEM)
	tests := []struct {
		name   string
		server func(*server.Options)
		creds  node.Credentials
		client []nats.Option
	}{
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, node.Credentials{NkeySeedFile: seed}, []nats.Option{nkeyOption(t, seed)}},
		{"token", func(o *server.Options) { o.Authorization = "s3cret-token" }, node.Credentials{Token: "s3cret-token"}, []nats.Option{nats.Token("s3cret-token")}},
		{"TLS", func(o *server.Options) { o.TLSConfig, o.TLS = tlsConfig, true }, node.Credentials{TLSCA: ca}, []nats.Option{nats.RootCAs(ca)}},
		{"TLS with a client certificate", func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify = mutual, true, true },
			node.Credentials{TLSCA: ca, TLSCert: clientCert, TLSKey: clientKey}, []nats.Option{nats.RootCAs(ca), nats.ClientCert(clientCert, clientKey)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startExternal(t, tt.server)
			startNode(t, "", func(c *node.Config) { c.NATSURL, c.Credentials = s.ClientURL(), tt.creds })
			nc, err := nats.Connect(s.ClientURL(), tt.client...)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			a, _ := client.NewAdmin(nc)
			if v, err := a.IncreaseGroupCounter(context.Background(), "g", "k", 1); err != nil || v != 1 {
				t.Errorf("increase through the node = %d, %v", v, err)
			}
		})
	}
}

// TestRedact checks what the node logs of a NATS URL: no password or
// token, whatever the URL's form.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                           "nats://127.0.0.1:4222",
		"nats://node:s3cret@10.0.0.1:4222":                "nats://node:xxxxx@10.0.0.1:4222",
		"nats://s3cret@10.0.0.1:4222":                     "nats://xxxxx@10.0.0.1:4222",
		"nats://a:s3cret@h1:4222,nats://a:s3cret@h2:4222": "nats://a:xxxxx@h1:4222,nats://a:xxxxx@h2:4222",
		"a:s3cret@h1:4222":                                "xxxxx@h1:4222",
	} {
		if got := node.Redact(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func nkeyFile(t *testing.T, dir string) (path, public string) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	public, _ = kp.PublicKey()
	path = filepath.Join(dir, "node.nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, public
}

func nkeyOption(t *testing.T, seed string) nats.Option {
	o, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// testTLS makes a certificate authority, a server certificate for
// 127.0.0.1 and a client certificate, and returns the authority's file,
// the server's TLS configuration and the client's certificate and key
// files.
func testTLS(t *testing.T, dir string) (caFile string, _ *tls.Config, certFile, keyFile string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tally test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ckey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "tally-node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cder, err := x509.CreateCertificate(rand.Reader, ctmpl, ca, &ckey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ckeyDER, err := x509.MarshalECPrivateKey(ckey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	for f, b := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: cder},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: ckeyDER},
	} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, certFile, keyFile
}
