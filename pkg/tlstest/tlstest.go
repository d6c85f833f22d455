// Package tlstest makes what a test of TLS needs: a certificate authority,
// a server certificate for 127.0.0.1 and localhost, and a client
// certificate, also written as PEM files.
package tlstest

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

// PKI is a test CA and the certificates it signed, valid for an hour on
// either side of now.
type PKI struct {
	Pool           *x509.CertPool // holds the CA
	Server, Client tls.Certificate
	// Dir holds the files: the CA's certificate, and each leaf's
	// certificate and private key (PKCS #8), in PEM.
	Dir                                                  string
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
}

// New makes a PKI whose CA is called name.
func New(t testing.TB, name string) *PKI {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)
	p := &PKI{Pool: x509.NewCertPool(), Dir: t.TempDir()}
	p.Pool.AddCert(ca)
	write := func(file, typ string, der []byte) string {
		path := filepath.Join(p.Dir, file)
		must(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	leaf := func(serial int64, role string, usage x509.ExtKeyUsage) (tls.Certificate, string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name + " " + role},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}, ca, &key.PublicKey, caKey)
		must(err)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		must(err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, write(role+".pem", "CERTIFICATE", der), write(role+"-key.pem", "PRIVATE KEY", keyDER)
	}
	p.CAFile = write("ca.pem", "CERTIFICATE", caDER)
	p.Server, p.ServerCert, p.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.Client, p.ClientCert, p.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}
