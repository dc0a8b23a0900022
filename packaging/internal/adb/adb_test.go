package adb

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"strings"
	"testing"
)

// node builds the Node Decode should return for a value.
func intNode(typ uint32, n uint64) Node  { return Node{Type: typ, Int: n} }
func blobNode(typ uint32, b []byte) Node { return Node{Type: typ, Blob: b} }

func TestRoundTrip(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 70000)
	for _, tc := range []struct {
		name string
		v    Value
		want Node
	}{
		{"null", nil, Node{}},
		{"small int", Int(5), intNode(TypeInt, 5)},
		{"largest direct int", Int(1<<28 - 1), intNode(TypeInt, 1<<28-1)},
		{"int32", Int(1 << 28), intNode(TypeInt32, 1<<28)},
		{"int64", Int(1 << 40), intNode(TypeInt64, 1<<40)},
		{"empty blob is null", Blob{}, Node{}},
		{"blob8", String("homenet"), blobNode(TypeBlob8, []byte("homenet"))},
		{"blob16", Blob(long[:300]), blobNode(TypeBlob16, long[:300])},
		{"blob32", Blob(long), blobNode(TypeBlob32, long)},
		{"empty object is null", Object{nil, nil}, Node{}},
		{"object keeps inner nulls, drops trailing", Object{String("a"), nil, Int(3), nil},
			Node{Type: TypeObject, Slots: []Node{blobNode(TypeBlob8, []byte("a")), {}, intNode(TypeInt, 3)}}},
		{"array drops nulls", Array{nil, Int(1), Blob{}, Int(2)},
			Node{Type: TypeArray, Slots: []Node{intNode(TypeInt, 1), intNode(TypeInt, 2)}}},
		{"nested", Object{Array{Object{String("x")}}},
			Node{Type: TypeObject, Slots: []Node{{Type: TypeArray, Slots: []Node{{Type: TypeObject, Slots: []Node{blobNode(TypeBlob8, []byte("x"))}}}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			block, err := Encode(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(block)
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, tc.want) {
				t.Errorf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}

func equal(a, b Node) bool {
	if a.Type != b.Type || a.Int != b.Int || !bytes.Equal(a.Blob, b.Blob) || len(a.Slots) != len(b.Slots) {
		return false
	}
	for i := range a.Slots {
		if !equal(a.Slots[i], b.Slots[i]) {
			return false
		}
	}
	return true
}

// TestLayout checks the bytes apk's reader depends on: the block header,
// alignment of each value to its size, and little-endian words.
func TestLayout(t *testing.T) {
	block, err := Encode(Object{String("ab"), Int(1 << 30)})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0, 0, 0, 0, // compat version, version, reserved
		0x10, 0, 0, 0xe0, // root: object at 16
		2, 'a', 'b', // blob8 at 8
		0,             // pad to 4
		0, 0, 0, 0x40, // int32 at 12
		3, 0, 0, 0, // object at 16: 3 slots
		8, 0, 0, 0x80, // blob8 at 8
		12, 0, 0, 0x20, // int32 at 12
	}
	if !bytes.Equal(block, want) {
		t.Errorf("block\n got % x\nwant % x", block, want)
	}
}

func TestSelfHash(t *testing.T) {
	block, err := Encode(Object{String("a"), SelfHash(20)})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := Decode(block)
	id := n.Field(2).Blob
	zeroed := bytes.Clone(block)
	off := bytes.Index(block, id)
	copy(zeroed[off:off+20], make([]byte, 20))
	sum := sha256.Sum256(zeroed)
	if !bytes.Equal(id, sum[:20]) {
		t.Errorf("self hash %x, want %x (SHA-256 of the block with it zeroed)", id, sum[:20])
	}
	if _, err := Encode(SelfHash(33)); err == nil {
		t.Errorf("a 33-byte self hash (SHA-256 has 32) was accepted")
	}
}

func TestFile(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, err := NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, compressed := range []bool{false, true} {
		f := File{Schema: SchemaPackage, Root: Object{String("x")}, Data: [][]byte{[]byte("12345"), {}}, Keys: []*Key{key}, Uncompressed: !compressed}
		b, err := f.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b[:4]); got != map[bool]string{false: "ADB.", true: "ADBd"}[compressed] {
			t.Errorf("compressed=%v: magic %q", compressed, got)
		}
		p, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Schema != SchemaPackage || p.Compressed != compressed || len(p.Sigs) != 1 || len(p.Data) != 2 || string(p.Data[0]) != "12345" {
			t.Errorf("parsed %+v", p)
		}
		if err := p.Verify(&priv.PublicKey); err != nil {
			t.Errorf("own signature: %v", err)
		}
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err := p.Verify(&other.PublicKey); err == nil {
			t.Errorf("verified with another key")
		}
		// Any change to the ADB block breaks the signature.
		p.ADB[len(p.ADB)-1] ^= 1
		if err := p.Verify(&priv.PublicKey); err == nil {
			t.Errorf("verified a changed ADB block")
		}
	}
}

func TestBlockPadding(t *testing.T) {
	for n := range 12 {
		var b bytes.Buffer
		if err := writeBlock(&b, BlockData, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if b.Len()%8 != 0 || b.Len() < 4+n || b.Len() >= 4+n+8 {
			t.Errorf("%d-byte payload: block of %d bytes, want 4+%d rounded up to 8", n, b.Len(), n)
		}
		if w := binary.LittleEndian.Uint32(b.Bytes()); w != BlockData<<30|uint32(4+n) {
			t.Errorf("%d-byte payload: header %#x", n, w)
		}
	}
}

func TestKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(ed)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	for _, tc := range []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"EC SEC1", pemOf("EC PRIVATE KEY", sec1), ""},
		{"EC PKCS8", pemOf("PRIVATE KEY", pkcs8), ""},
		{"RSA PKCS1", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), ""},
		{"Ed25519", pemOf("PRIVATE KEY", edPKCS8), "not supported"},
		{"public key", pemOf("PUBLIC KEY", []byte{1}), "not a private key"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"garbage DER", pemOf("EC PRIVATE KEY", []byte{1, 2}), "parsing EC PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.pem)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ID() == [16]byte{} {
				t.Errorf("zero key id")
			}
			if _, err := k.PublicPEM(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestKeyID checks the id against apk's definition for an EC key: SHA-512
// of the uncompressed point, first 16 bytes.
func TestKeyID(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, _ := NewKey(ec)
	point := append([]byte{4}, append(ec.X.FillBytes(make([]byte, 32)), ec.Y.FillBytes(make([]byte, 32))...)...)
	want := sha512Sum(point)
	if id := k.ID(); !bytes.Equal(id[:], want[:16]) {
		t.Errorf("id %x, want %x", id, want[:16])
	}
}

func TestParseErrors(t *testing.T) {
	good, _ := File{Schema: 1, Root: Object{Int(1)}, Uncompressed: true}.Bytes()
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"empty", nil, "no ADB. header"},
		{"tar", []byte("./debian-binary\x00\x00\x00"), "no ADB. header"},
		{"truncated block", good[:len(good)-9], "does not fit"},
		{"no ADB block", good[:8], "no ADB block"},
		{"data before ADB", append(bytes.Clone(good[:8]), 8, 0, 0, 0x80, 0, 0, 0, 0), "out of order"},
		{"bad deflate", []byte("ADBd\xff\xff"), "inflating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// An object whose slot points at itself must not recurse forever.
	loop := []byte{0, 0, 0, 0, 8, 0, 0, 0xe0, 2, 0, 0, 0, 8, 0, 0, 0xe0}
	if _, err := Decode(loop); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("self-referencing object: err %v", err)
	}
}

func sha512Sum(b []byte) [64]byte { return sha512.Sum512(b) }

func FuzzParse(f *testing.F) {
	good, _ := File{Schema: SchemaPackage, Root: Object{String("x"), Array{Int(1 << 40)}}, Data: [][]byte{{1}}}.Bytes()
	raw, _ := File{Schema: SchemaPackage, Root: Object{String("x")}, Uncompressed: true}.Bytes()
	f.Add(good)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		_, _ = p.Root()
	})
}
