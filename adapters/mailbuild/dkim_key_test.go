package mailbuild_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"regexp"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

var algorithms = []mailbuild.DKIMAlgorithm{mailbuild.RSASHA256, mailbuild.Ed25519SHA256}

// generatedKeys holds one key per algorithm for the whole run: RSA generation
// under -race is slow enough that a key per test would dominate the run time.
var generatedKeys = sync.OnceValues(func() (map[mailbuild.DKIMAlgorithm][]byte, error) {
	keys := make(map[mailbuild.DKIMAlgorithm][]byte)
	for _, alg := range algorithms {
		k, err := mailbuild.GenerateDKIMKey(alg)
		if err != nil {
			return nil, err
		}
		keys[alg] = k
	}
	return keys, nil
})

func testKey(t *testing.T, alg mailbuild.DKIMAlgorithm) []byte {
	t.Helper()
	keys, err := generatedKeys()
	if err != nil {
		t.Fatalf("GenerateDKIMKey: %v", err)
	}
	return keys[alg]
}

// checkInvalid reports an error unless err is a domain invalid-input error
// naming field; input identifies the case in the report.
func checkInvalid(t *testing.T, err error, field string, input any) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != field {
		t.Errorf("%q: err = %v, want a %s error on field %q", input, err, domain.CodeInvalid, field)
	}
}

func pemOf(t *testing.T, blockType string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}

func TestGenerateDKIMKey(t *testing.T) {
	t.Parallel()

	t.Run("RSA", func(t *testing.T) {
		t.Parallel()
		block := decodePEM(t, testKey(t, mailbuild.RSASHA256))
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatalf("ParsePKCS8PrivateKey: %v", err)
		}
		rsaKey, ok := key.(*rsa.PrivateKey)
		if !ok {
			t.Fatalf("key is %T, want *rsa.PrivateKey", key)
		}
		if bits := rsaKey.N.BitLen(); bits != mailbuild.GenerateRSABits {
			t.Fatalf("modulus is %d bits, want %d", bits, mailbuild.GenerateRSABits)
		}
	})

	t.Run("Ed25519", func(t *testing.T) {
		t.Parallel()
		block := decodePEM(t, testKey(t, mailbuild.Ed25519SHA256))
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatalf("ParsePKCS8PrivateKey: %v", err)
		}
		if _, ok := key.(ed25519.PrivateKey); !ok {
			t.Fatalf("key is %T, want ed25519.PrivateKey", key)
		}
	})

	t.Run("FreshEachCall", func(t *testing.T) {
		t.Parallel()
		a, err := mailbuild.GenerateDKIMKey(mailbuild.Ed25519SHA256)
		if err != nil {
			t.Fatal(err)
		}
		b, err := mailbuild.GenerateDKIMKey(mailbuild.Ed25519SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a, b) {
			t.Fatal("two calls returned the same key")
		}
	})

	t.Run("ErrUnknownAlgorithm", func(t *testing.T) {
		t.Parallel()
		for _, alg := range []mailbuild.DKIMAlgorithm{"", "rsa-sha1", "RSA-SHA256", "ecdsa-sha256"} {
			_, err := mailbuild.GenerateDKIMKey(alg)
			checkInvalid(t, err, "algorithm", alg)
		}
	})
}

func decodePEM(t *testing.T, data []byte) *pem.Block {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil {
		t.Fatalf("not PEM: %q", data)
	}
	if block.Type != "PRIVATE KEY" {
		t.Fatalf("PEM type = %q, want PRIVATE KEY", block.Type)
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the PEM block", len(rest))
	}
	return block
}

// publicKeyOfRecord returns the decoded p= tag of the DNS record for
// privatePEM, checking the record's form and that its k= tag is keyType.
func publicKeyOfRecord(t *testing.T, privatePEM []byte, keyType string) []byte {
	t.Helper()
	recordPattern := regexp.MustCompile(`^v=DKIM1; k=(rsa|ed25519); p=([A-Za-z0-9+/]+={0,2})$`)
	record, err := mailbuild.DKIMRecord(privatePEM)
	if err != nil {
		t.Fatalf("DKIMRecord: %v", err)
	}
	m := recordPattern.FindStringSubmatch(record)
	if m == nil || m[1] != keyType {
		t.Fatalf("record = %q, want v=DKIM1; k=%s; p=...", record, keyType)
	}
	public, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		t.Fatalf("p= is not base64: %v", err)
	}
	return public
}

func TestDKIMRecord(t *testing.T) {
	t.Parallel()

	t.Run("RSA", func(t *testing.T) {
		t.Parallel()
		privatePEM := testKey(t, mailbuild.RSASHA256)
		der := publicKeyOfRecord(t, privatePEM, "rsa")
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			t.Fatalf("p= is not a SubjectPublicKeyInfo: %v", err)
		}
		key, _ := x509.ParsePKCS8PrivateKey(decodePEM(t, privatePEM).Bytes)
		if !key.(*rsa.PrivateKey).PublicKey.Equal(pub) {
			t.Fatal("p= is not the key's public half")
		}
	})

	t.Run("Ed25519", func(t *testing.T) {
		t.Parallel()
		privatePEM := testKey(t, mailbuild.Ed25519SHA256)
		raw := publicKeyOfRecord(t, privatePEM, "ed25519")
		if len(raw) != ed25519.PublicKeySize {
			t.Fatalf("p= holds %d bytes, want the raw %d-byte key (RFC 8463)", len(raw), ed25519.PublicKeySize)
		}
		key, _ := x509.ParsePKCS8PrivateKey(decodePEM(t, privatePEM).Bytes)
		if !bytes.Equal(raw, key.(ed25519.PrivateKey).Public().(ed25519.PublicKey)) {
			t.Fatal("p= is not the key's public half")
		}
	})

	t.Run("PKCS1", func(t *testing.T) {
		t.Parallel()
		key, _ := x509.ParsePKCS8PrivateKey(decodePEM(t, testKey(t, mailbuild.RSASHA256)).Bytes)
		pkcs1 := pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey)))
		got, err := mailbuild.DKIMRecord(pkcs1)
		if err != nil {
			t.Fatalf("DKIMRecord(PKCS#1): %v", err)
		}
		want, _ := mailbuild.DKIMRecord(testKey(t, mailbuild.RSASHA256))
		if got != want {
			t.Fatalf("PKCS#1 record = %q, want the PKCS#8 one %q", got, want)
		}
	})

	t.Run("ErrBadKey", func(t *testing.T) {
		t.Parallel()
		for name, privatePEM := range badKeys(t) {
			_, err := mailbuild.DKIMRecord(privatePEM)
			checkInvalid(t, err, "private_key", name)
		}
	})
}

// badKeys returns private keys every function taking a PEM key must refuse.
func badKeys(t *testing.T) map[string][]byte {
	t.Helper()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	good := testKey(t, mailbuild.Ed25519SHA256)
	goodBlock := decodePEM(t, good)

	return map[string][]byte{
		"Empty":          nil,
		"NotPEM":         []byte("not a key"),
		"Base64OnlyDER":  []byte(base64.StdEncoding.EncodeToString(goodBlock.Bytes)),
		"GarbageDER":     pemOf(t, "PRIVATE KEY", []byte("garbage")),
		"Truncated":      good[:len(good)/2],
		"PublicKey":      pemOf(t, "PUBLIC KEY", pubDER),
		"ECDSA":          pemOf(t, "PRIVATE KEY", ecDER),
		"ECDSAInSEC1":    pemOf(t, "EC PRIVATE KEY", ecDER),
		"Certificate":    pemOf(t, "CERTIFICATE", goodBlock.Bytes),
		"TwoBlocks":      append(append([]byte{}, good...), testKey(t, mailbuild.RSASHA256)...),
		"RSA512":         readFile(t, "testdata/rsa-512.pem"),
		"RSA4608":        readFile(t, "testdata/rsa-4608.pem"),
		"PKCS8AsPKCS1":   pemOf(t, "RSA PRIVATE KEY", goodBlock.Bytes),
		"EncryptedStyle": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: goodBlock.Bytes}),
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
