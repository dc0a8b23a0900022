package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Header is what ReadTar reports about an entry besides its name and
// contents, for tests that check ownership and times.
type Header struct {
	Uid, Gid     int
	Uname, Gname string
	ModUnix      int64
}

// ReadEntry is an entry read back from a tar archive.
type ReadEntry struct {
	Entry
	Header
	RawName string // as stored, with any "./" prefix and trailing slash
}

// ReadTar reads every entry of the tar stream b. Names lose their "./"
// prefix and trailing slash; RawName keeps them.
func ReadTar(b []byte) ([]ReadEntry, error) {
	tr := tar.NewReader(bytes.NewReader(b))
	var out []ReadEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return out, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		e := ReadEntry{
			Entry: Entry{
				Name: name, Mode: h.Mode & 0o7777, Type: h.Typeflag,
				Dir: h.Typeflag == tar.TypeDir, Link: h.Linkname, Data: data, Size: h.Size,
			},
			Header:  Header{Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname, ModUnix: h.ModTime.Unix()},
			RawName: h.Name,
		}
		out = append(out, e)
	}
}

// ReadTarGz reads a gzip-compressed tar as ReadTar does.
func ReadTarGz(b []byte) ([]ReadEntry, error) {
	raw, err := Gunzip(b)
	if err != nil {
		return nil, err
	}
	return ReadTar(raw)
}

// Gunzip decompresses one gzip stream and fails on trailing data.
func Gunzip(b []byte) ([]byte, error) {
	r := bytes.NewReader(b) // an io.ByteReader: gzip reads no further than the stream
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	if r.Len() > 0 {
		return nil, fmt.Errorf("gzip: %d bytes after the stream", r.Len())
	}
	return out, nil
}

// Find returns the entry named name.
func Find(es []ReadEntry, name string) (ReadEntry, bool) {
	for _, e := range es {
		if e.Name == name {
			return e, true
		}
	}
	return ReadEntry{}, false
}

// Names returns the names of es in order.
func Names(es []ReadEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name
	}
	return out
}
