package adb

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
)

// Signature header values (struct adb_sign_v0 in apk-tools src/adb.h).
const (
	signVersion = 0
	// digestSHA512 is APK_DIGEST_SHA512: the ADB block is hashed with it.
	digestSHA512 = 4
)

// Key is a private key that signs ADB blocks the way apk-tools 3 verifies
// them: an ECDSA or RSA key (apk loads keys with OpenSSL and signs with
// SHA-512; abuild and OpenWrt keys are such PEM files).
type Key struct {
	signer crypto.Signer
	id     [16]byte
}

// ParseKey parses a PEM private key: "EC PRIVATE KEY" (openssl ecparam
// -genkey), "RSA PRIVATE KEY" (openssl genrsa) or PKCS #8 "PRIVATE KEY"
// (openssl genpkey) holding an ECDSA or RSA key.
func ParseKey(pemBytes []byte) (*Key, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, fmt.Errorf("adb: no PEM block in the key")
	}
	var (
		key any
		err error
	)
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("adb: PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("adb: parsing %s: %w", blk.Type, err)
	}
	return NewKey(key)
}

// LoadKey reads a PEM private key file (see ParseKey).
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// NewKey wraps an *ecdsa.PrivateKey or *rsa.PrivateKey. Ed25519 keys are
// refused: apk 3.0.6 signs with a SHA-512 digest, which OpenSSL does not
// combine with Ed25519.
func NewKey(key any) (*Key, error) {
	var pub []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		// i2d_PublicKey of an EC key: the uncompressed point.
		ek, err := k.PublicKey.ECDH()
		if err != nil {
			return nil, fmt.Errorf("adb: EC key: %w", err)
		}
		pub = ek.Bytes()
	case *rsa.PrivateKey:
		// i2d_PublicKey of an RSA key: PKCS #1 RSAPublicKey.
		pub = x509.MarshalPKCS1PublicKey(&k.PublicKey)
	default:
		return nil, fmt.Errorf("adb: %T keys are not supported; use an ECDSA (e.g. openssl ecparam -name prime256v1 -genkey) or RSA key", key)
	}
	k := &Key{signer: key.(crypto.Signer)}
	sum := sha512.Sum512(pub)
	copy(k.id[:], sum[:])
	return k, nil
}

// ID is the key's id as apk computes it: the first 16 bytes of the SHA-512
// of the DER public key. apk finds the verifying key by it, not by name.
func (k *Key) ID() [16]byte { return k.id }

// Public is the public key.
func (k *Key) Public() crypto.PublicKey { return k.signer.Public() }

// PublicPEM is the public key as a PEM "PUBLIC KEY", the file that goes
// into /etc/apk/keys.
func (k *Key) PublicPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k.signer.Public())
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// signedMessage is what a v0 signature covers: the schema, the signature
// header and id, and the SHA-512 of the ADB block (adb_digest_v0_signature).
func signedMessage(schema uint32, hdr []byte, adbBlock []byte) []byte {
	sum := sha512.Sum512(adbBlock)
	m := binary.LittleEndian.AppendUint32(nil, schema)
	m = append(m, hdr...)
	return append(m, sum[:]...)
}

// sign returns the payload of a SIG block for adbBlock.
func (k *Key) sign(schema uint32, adbBlock []byte) ([]byte, error) {
	hdr := append([]byte{signVersion, digestSHA512}, k.id[:]...)
	digest := sha512.Sum512(signedMessage(schema, hdr, adbBlock))
	var (
		sig []byte
		err error
	)
	switch s := k.signer.(type) {
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, s, digest[:])
	default:
		sig, err = k.signer.Sign(rand.Reader, digest[:], crypto.SHA512)
	}
	if err != nil {
		return nil, fmt.Errorf("adb: signing: %w", err)
	}
	return append(hdr, sig...), nil
}
