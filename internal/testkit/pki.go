package testkit

import (
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
	"testing"
	"time"
)

// PKI is a test certificate authority with a server certificate for
// 127.0.0.1 and localhost and a client certificate, all written as PEM
// files: what a test of mutual TLS against a real server (redis-server
// --tls-port, kfake.TLS) needs, made with crypto/x509 alone.
type PKI struct {
	// CAFile, CertFile/KeyFile (server) and ClientCertFile/ClientKeyFile
	// are the PEM files in the folder NewPKI was given.
	CAFile, CertFile, KeyFile, ClientCertFile, ClientKeyFile string
	// Pool trusts the CA.
	Pool *x509.CertPool
	// Server is the server's certificate and key.
	Server tls.Certificate
}

// ServerTLS is a server configuration presenting the server certificate
// and, when clientAuth, requiring a client certificate of the CA.
func (p *PKI) ServerTLS(clientAuth bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.Pool
	}
	return c
}

// NewPKI makes a fresh CA (named name, so that two PKIs of a test differ)
// and its certificates in dir, valid for an hour around now.
func NewPKI(t testing.TB, dir, name string) *PKI {
	t.Helper()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost", "shrike-test-server"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	serverCert, serverKey := leaf(2, "shrike-test-server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := leaf(3, "shrike-test-client", x509.ExtKeyUsageClientAuth)
	p := &PKI{
		CAFile:         filepath.Join(dir, name+"-ca.pem"),
		CertFile:       filepath.Join(dir, name+"-server.pem"),
		KeyFile:        filepath.Join(dir, name+"-server-key.pem"),
		ClientCertFile: filepath.Join(dir, name+"-client.pem"),
		ClientKeyFile:  filepath.Join(dir, name+"-client-key.pem"),
		Pool:           x509.NewCertPool(),
	}
	p.Pool.AddCert(ca)
	for _, f := range []struct {
		path string
		pem  []byte
	}{
		{p.CAFile, caPEM},
		{p.CertFile, serverCert},
		{p.KeyFile, serverKey},
		{p.ClientCertFile, clientCert},
		{p.ClientKeyFile, clientKey},
	} {
		if err := os.WriteFile(f.path, f.pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if p.Server, err = tls.X509KeyPair(serverCert, serverKey); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
