package adb

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Value types, the high 4 bits of a value word (apk-tools src/adb.h).
const (
	TypeSpecial = 0x0 << 28 // null, true, false in the low bits
	TypeInt     = 0x1 << 28 // an integer below 2^28 in the low bits
	TypeInt32   = 0x2 << 28
	TypeInt64   = 0x3 << 28
	TypeBlob8   = 0x8 << 28
	TypeBlob16  = 0x9 << 28
	TypeBlob32  = 0xa << 28
	TypeArray   = 0xd << 28
	TypeObject  = 0xe << 28

	typeMask  = 0xf << 28
	valueMask = 1<<28 - 1
)

// A Value is one node of the tree in an ADB block: Int, Blob, Object,
// Array or SelfHash. A nil Value is null, which readers take as "not set".
type Value interface {
	encode(e *encoder) (uint32, error)
}

// Int is an integer.
type Int uint64

// Blob is a byte string. An empty one is written as null, as apk does.
type Blob []byte

// String is a Blob holding s.
func String(s string) Blob { return Blob(s) }

// Object is an object: Object[i] is field number i+1 of its schema; nil
// fields are null. Trailing nulls are not written, and an object with no
// field set is null.
type Object []Value

// Array is an array; nil items are left out, as apk's writer does. The
// schema may want the items sorted: that is the caller's job.
type Array []Value

// SelfHash is a blob of n bytes that ends up holding the first n bytes of
// the SHA-256 of the whole ADB block, computed while the blob is zero: what
// apk mkpkg writes as a package's unique id ("hashes" of its info).
type SelfHash int

// encoder lays out values in an ADB block. Offsets are from the start of
// the block, whose first 8 bytes are its header.
type encoder struct {
	buf      []byte
	selfHash []selfHashAt
}

type selfHashAt struct{ off, n int }

// blockHeaderLen is struct adb_hdr: compat version, version, reserved
// (2 bytes) and the root value.
const blockHeaderLen = 8

// Encode returns the payload of the ADB block holding root.
func Encode(root Value) ([]byte, error) {
	e := &encoder{buf: make([]byte, blockHeaderLen, 4096)}
	// compat version 0 and version 0: what apk 3.0 writes and accepts.
	v, err := encodeValue(e, root)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(e.buf[4:], v)
	if len(e.selfHash) > 0 {
		sum := sha256.Sum256(e.buf)
		for _, h := range e.selfHash {
			copy(e.buf[h.off:h.off+h.n], sum[:])
		}
	}
	return e.buf, nil
}

func encodeValue(e *encoder, v Value) (uint32, error) {
	if v == nil {
		return 0, nil
	}
	return v.encode(e)
}

// write appends b at the next multiple of align and returns its offset.
func (e *encoder) write(align int, b ...[]byte) (uint32, error) {
	for len(e.buf)%align != 0 {
		e.buf = append(e.buf, 0)
	}
	off := len(e.buf)
	if off > valueMask {
		return 0, fmt.Errorf("adb: block larger than %d bytes, the most a value offset reaches", valueMask)
	}
	for _, p := range b {
		e.buf = append(e.buf, p...)
	}
	return uint32(off), nil
}

func (i Int) encode(e *encoder) (uint32, error) {
	switch {
	case i <= valueMask:
		return TypeInt | uint32(i), nil
	case i <= 0xffffffff:
		off, err := e.write(4, binary.LittleEndian.AppendUint32(nil, uint32(i)))
		return TypeInt32 | off, err
	default:
		// 64-bit integers are only 4-byte aligned, as apk writes them.
		off, err := e.write(4, binary.LittleEndian.AppendUint64(nil, uint64(i)))
		return TypeInt64 | off, err
	}
}

func (b Blob) encode(e *encoder) (uint32, error) {
	var (
		typ uint32
		n   []byte
	)
	switch l := len(b); {
	case l == 0:
		return 0, nil
	case l <= 0xff:
		typ, n = TypeBlob8, []byte{byte(l)}
	case l <= 0xffff:
		typ, n = TypeBlob16, binary.LittleEndian.AppendUint16(nil, uint16(l))
	case uint64(l) <= 0xffffffff:
		typ, n = TypeBlob32, binary.LittleEndian.AppendUint32(nil, uint32(l))
	default:
		return 0, fmt.Errorf("adb: blob of %d bytes is too long", l)
	}
	// A blob is aligned to the size of its length prefix.
	off, err := e.write(len(n), n, b)
	return typ | off, err
}

func (h SelfHash) encode(e *encoder) (uint32, error) {
	if h <= 0 || h > sha256.Size {
		return 0, fmt.Errorf("adb: self hash of %d bytes; want 1 to %d", int(h), sha256.Size)
	}
	v, err := Blob(make([]byte, h)).encode(e)
	if err != nil {
		return 0, err
	}
	e.selfHash = append(e.selfHash, selfHashAt{off: int(v&valueMask) + 1, n: int(h)})
	return v, nil
}

func (o Object) encode(e *encoder) (uint32, error) {
	return encodeSlots(e, TypeObject, o, true)
}

func (a Array) encode(e *encoder) (uint32, error) {
	return encodeSlots(e, TypeArray, a, false)
}

// encodeSlots writes the children first, then the run of slot words
// (count first). Objects keep inner nulls (slots are numbered); arrays drop
// them.
func encodeSlots(e *encoder, typ uint32, vs []Value, keepNull bool) (uint32, error) {
	words := []uint32{0}
	for i, v := range vs {
		w, err := encodeValue(e, v)
		if err != nil {
			return 0, fmt.Errorf("slot %d: %w", i+1, err)
		}
		if w == 0 && !keepNull {
			continue
		}
		words = append(words, w)
	}
	for len(words) > 1 && words[len(words)-1] == 0 {
		words = words[:len(words)-1]
	}
	if len(words) == 1 {
		return 0, nil
	}
	words[0] = uint32(len(words))
	b := make([]byte, 0, 4*len(words))
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	off, err := e.write(4, b)
	return typ | off, err
}
