package adb

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
)

// Block types, the high 2 bits of a block's first word.
const (
	BlockADB  = 0
	BlockSig  = 1
	BlockData = 2
	blockExt  = 3 // a 16-byte header with a 64-bit size follows
)

// blockAlign is ADB_BLOCK_ALIGNMENT: every block starts 8-byte aligned.
const blockAlign = 8

// Magic numbers at the start of a file (little-endian "ADB." and the
// compressed form "ADBd": raw deflate of the rest).
var (
	magic        = []byte("ADB.")
	magicDeflate = []byte("ADBd")
)

// File is an ADB file to write.
type File struct {
	// Schema is the root object's schema, such as SchemaPackage.
	Schema uint32
	// Root is the tree of the ADB block.
	Root Value
	// Data are the payloads of the DATA blocks, in order.
	Data [][]byte
	// Keys sign the ADB block, one SIG block each; none leaves the file
	// unsigned.
	Keys []*Key
	// Uncompressed writes the file as is instead of deflated, as apk's
	// "--compression none" does.
	Uncompressed bool
}

// Write writes f to w.
func (f File) Write(w io.Writer) error {
	adbBlock, err := Encode(f.Root)
	if err != nil {
		return err
	}
	if f.Uncompressed {
		return f.writeBlocks(w, adbBlock)
	}
	if _, err := w.Write(magicDeflate); err != nil {
		return err
	}
	// Level 9, as apk's default "deflate" compression.
	fw, err := flate.NewWriter(w, flate.BestCompression)
	if err != nil {
		return err
	}
	if err := f.writeBlocks(fw, adbBlock); err != nil {
		return err
	}
	return fw.Close()
}

// Bytes returns f as written by Write.
func (f File) Bytes() ([]byte, error) {
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (f File) writeBlocks(w io.Writer, adbBlock []byte) error {
	hdr := append(append([]byte(nil), magic...), binary.LittleEndian.AppendUint32(nil, f.Schema)...)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if err := writeBlock(w, BlockADB, adbBlock); err != nil {
		return err
	}
	for _, k := range f.Keys {
		sig, err := k.sign(f.Schema, adbBlock)
		if err != nil {
			return err
		}
		if err := writeBlock(w, BlockSig, sig); err != nil {
			return err
		}
	}
	for i, d := range f.Data {
		if err := writeBlock(w, BlockData, d); err != nil {
			return fmt.Errorf("data block %d: %w", i+1, err)
		}
	}
	return nil
}

// writeBlock writes one block: its header, payload and zero padding to 8
// bytes.
func writeBlock(w io.Writer, typ uint32, payload []byte) error {
	var hdr []byte
	n := uint64(len(payload))
	if n <= 0x3fffffff-4 {
		hdr = binary.LittleEndian.AppendUint32(nil, typ<<30|uint32(4+n))
	} else {
		hdr = binary.LittleEndian.AppendUint32(nil, blockExt<<30|typ)
		hdr = binary.LittleEndian.AppendUint32(hdr, 0)
		hdr = binary.LittleEndian.AppendUint64(hdr, 16+n)
	}
	raw := uint64(len(hdr)) + n
	pad := (blockAlign - raw%blockAlign) % blockAlign
	for _, b := range [][]byte{hdr, payload, make([]byte, pad)} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
