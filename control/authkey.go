package control

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"homenet/control/store"
)

// Pre-auth keys look like "hn-<prefix>-<secret>". The prefix identifies the
// key in listings and lookups; only the SHA-256 of the secret is stored. The
// secret has 128 bits of entropy, so a fast hash is enough.
const authKeyTag = "hn-"

func newAuthKeySecret() (prefix, secret string) {
	return randHex(6), randHex(16)
}

func formatAuthKey(prefix, secret string) string { return authKeyTag + prefix + "-" + secret }

func parseAuthKey(s string) (prefix, secret string, err error) {
	rest, ok := strings.CutPrefix(s, authKeyTag)
	if !ok {
		return "", "", errors.New("not a homenet auth key")
	}
	prefix, secret, ok = strings.Cut(rest, "-")
	if !ok || len(prefix) != 12 || len(secret) != 32 {
		return "", "", errors.New("malformed auth key")
	}
	return prefix, secret, nil
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func secretMatches(k store.AuthKey, secret string) bool {
	return subtle.ConstantTimeCompare(k.Hash, hashSecret(secret)) == 1
}

// authKeyValid reports whether k can register another node at now.
func authKeyValid(k store.AuthKey, now time.Time) bool {
	return !k.Revoked && now.Before(k.Expiry) && (k.Reusable || k.Used == 0)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
