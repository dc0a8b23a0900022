package adb

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Parsed is an ADB file read back by Parse.
type Parsed struct {
	Schema     uint32
	Compressed bool
	ADB        []byte   // the ADB block's payload
	Sigs       [][]byte // SIG block payloads
	Data       [][]byte // DATA block payloads
}

// maxParse bounds what Parse inflates, so that a small hostile file cannot
// take all memory.
const maxParse = 1 << 30

// Parse reads an ADB file, compressed or not. It checks the block order
// apk requires (one ADB block, SIG blocks, DATA blocks), not signatures.
func Parse(b []byte) (*Parsed, error) {
	p := &Parsed{}
	if bytes.HasPrefix(b, magicDeflate) {
		raw, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b[4:])), maxParse))
		if err != nil {
			return nil, fmt.Errorf("adb: inflating: %w", err)
		}
		b, p.Compressed = raw, true
	}
	if len(b) < 8 || !bytes.Equal(b[:4], magic) {
		return nil, errors.New("adb: no ADB. header")
	}
	p.Schema = binary.LittleEndian.Uint32(b[4:8])
	b = b[8:]
	for len(b) > 0 {
		typ, payload, rest, err := nextBlock(b)
		if err != nil {
			return nil, err
		}
		b = rest
		switch {
		case typ == BlockADB && p.ADB == nil && len(p.Sigs) == 0 && len(p.Data) == 0:
			if len(payload) < blockHeaderLen {
				return nil, fmt.Errorf("adb: ADB block of %d bytes is shorter than its header", len(payload))
			}
			if payload[0] != 0 {
				return nil, fmt.Errorf("adb: ADB block compat version %d, want 0", payload[0])
			}
			p.ADB = payload
		case typ == BlockSig && p.ADB != nil && len(p.Data) == 0:
			p.Sigs = append(p.Sigs, payload)
		case typ == BlockData && p.ADB != nil:
			p.Data = append(p.Data, payload)
		default:
			return nil, fmt.Errorf("adb: block type %d out of order", typ)
		}
	}
	if p.ADB == nil {
		return nil, errors.New("adb: no ADB block")
	}
	return p, nil
}

// nextBlock splits the first block off b.
func nextBlock(b []byte) (typ uint32, payload, rest []byte, err error) {
	if len(b) < 4 {
		return 0, nil, nil, fmt.Errorf("adb: %d stray bytes after the last block", len(b))
	}
	w := binary.LittleEndian.Uint32(b)
	typ, hdr, raw := w>>30, uint64(4), uint64(w&0x3fffffff)
	if typ == blockExt {
		if len(b) < 16 {
			return 0, nil, nil, errors.New("adb: truncated extended block header")
		}
		typ, hdr, raw = w&0x3fffffff, 16, binary.LittleEndian.Uint64(b[8:])
	}
	if raw < hdr || raw > uint64(len(b)) {
		return 0, nil, nil, fmt.Errorf("adb: block size %d does not fit the %d bytes left", raw, len(b))
	}
	size := (raw + blockAlign - 1) / blockAlign * blockAlign
	if size > uint64(len(b)) {
		return 0, nil, nil, fmt.Errorf("adb: block padding runs past the end")
	}
	return typ, b[hdr:raw], b[size:], nil
}

// Node is a decoded value.
type Node struct {
	Type  uint32 // one of the Type constants
	Int   uint64 // for integers and specials
	Blob  []byte
	Slots []Node // objects and arrays: slot 1 first
}

// IsNull reports whether n is the null value (an unset field).
func (n Node) IsNull() bool { return n.Type == TypeSpecial && n.Int == 0 }

// Field returns slot i (1-based) of an object or array, null if missing.
func (n Node) Field(i int) Node {
	if i < 1 || i > len(n.Slots) {
		return Node{}
	}
	return n.Slots[i-1]
}

// maxDepth bounds nesting: offsets may point anywhere, even at an
// enclosing object.
const maxDepth = 16

// Root decodes the tree of the ADB block.
func (p *Parsed) Root() (Node, error) {
	return Decode(p.ADB)
}

// Decode decodes the tree of an ADB block payload.
func Decode(block []byte) (Node, error) {
	if len(block) < blockHeaderLen {
		return Node{}, errors.New("adb: block shorter than its header")
	}
	return decodeValue(block, binary.LittleEndian.Uint32(block[4:]), 0)
}

func decodeValue(block []byte, v uint32, depth int) (Node, error) {
	typ, val := v&typeMask, v&valueMask
	n := Node{Type: typ}
	at := func(size uint64) ([]byte, error) {
		if uint64(val)+size > uint64(len(block)) {
			return nil, fmt.Errorf("adb: value %#08x: %d bytes at %d run past the block's %d", v, size, val, len(block))
		}
		return block[val : uint64(val)+size], nil
	}
	switch typ {
	case TypeSpecial, TypeInt:
		n.Int = uint64(val)
	case TypeInt32, TypeInt64:
		size := uint64(4)
		if typ == TypeInt64 {
			size = 8
		}
		b, err := at(size)
		if err != nil {
			return n, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			n.Int = n.Int<<8 | uint64(b[i])
		}
	case TypeBlob8, TypeBlob16, TypeBlob32:
		lenSize := map[uint32]uint64{TypeBlob8: 1, TypeBlob16: 2, TypeBlob32: 4}[typ]
		b, err := at(lenSize)
		if err != nil {
			return n, err
		}
		var l uint64
		for i := len(b) - 1; i >= 0; i-- {
			l = l<<8 | uint64(b[i])
		}
		if b, err = at(lenSize + l); err != nil {
			return n, err
		}
		n.Blob = b[lenSize:]
	case TypeArray, TypeObject:
		if depth >= maxDepth {
			return n, fmt.Errorf("adb: values nested deeper than %d", maxDepth)
		}
		b, err := at(4)
		if err != nil {
			return n, err
		}
		count := uint64(binary.LittleEndian.Uint32(b))
		if count == 0 {
			return n, fmt.Errorf("adb: value %#08x: object with a slot count of 0", v)
		}
		if b, err = at(4 * count); err != nil {
			return n, err
		}
		for i := uint64(1); i < count; i++ {
			c, err := decodeValue(block, binary.LittleEndian.Uint32(b[4*i:]), depth+1)
			if err != nil {
				return n, err
			}
			n.Slots = append(n.Slots, c)
		}
	default:
		return n, fmt.Errorf("adb: value %#08x has unknown type %#x", v, typ>>28)
	}
	return n, nil
}

// Verify reports whether one of p's signatures is pub's (an *ecdsa or *rsa
// PublicKey), checked as apk checks it.
func (p *Parsed) Verify(pub crypto.PublicKey) error {
	for _, sig := range p.Sigs {
		if len(sig) < 18 || sig[0] != signVersion || sig[1] != digestSHA512 {
			continue
		}
		digest := sha512.Sum512(signedMessage(p.Schema, sig[:18], p.ADB))
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			if ecdsa.VerifyASN1(k, digest[:], sig[18:]) {
				return nil
			}
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(k, crypto.SHA512, digest[:], sig[18:]) == nil {
				return nil
			}
		default:
			return fmt.Errorf("adb: cannot verify with a %T", pub)
		}
	}
	return fmt.Errorf("adb: none of the %d signatures is by this key", len(p.Sigs))
}
