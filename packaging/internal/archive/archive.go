// Package archive writes the deterministic tar and gzip streams that every
// homenet package is made of, and reads them back for tests.
//
// Determinism: entries carry a fixed modification time, numeric owner 0:0
// and no user or group names; gzip headers carry no name and no time. The
// same inputs therefore give byte-identical packages.
package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Epoch is the modification time of every entry: 2020-01-01 UTC, after the
// FAT epoch and far from the zero time, which some tar readers mishandle.
var Epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one file, directory or symlink of a tar archive.
type Entry struct {
	Name string // slash-separated, without a leading "./" or "/"
	Mode int64  // permission bits, such as 0o755
	Dir  bool   // a directory; Data is ignored
	Link string // a symlink to Link; Data is ignored
	Data []byte // file contents
	File string // if set, the contents are read from this path instead of Data
	Size int64  // set by Tree for File entries; else computed
	Type byte   // for reading back: tar.TypeReg, TypeDir or TypeSymlink
}

// Tree is the contents of an archive, written in the order given. Use Add*
// to build it; Write adds the parent directories an entry needs.
type Tree struct {
	entries []Entry
	// Prefix is put before every name, such as "./" for the layouts opkg
	// and QDK write.
	Prefix string
}

// Embedded returns the file at name in fsys, a package's embedded files.
// A missing one is a mistake in the build itself, so it panics.
func Embedded(fsys fs.FS, name string) []byte {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		panic(err)
	}
	return b
}

// AddDir adds a directory.
func (t *Tree) AddDir(name string, mode int64) {
	t.entries = append(t.entries, Entry{Name: clean(name), Mode: mode, Dir: true})
}

// AddFile adds a regular file with the given contents.
func (t *Tree) AddFile(name string, mode int64, data []byte) {
	t.entries = append(t.entries, Entry{Name: clean(name), Mode: mode, Data: data})
}

// AddString adds a regular file holding s.
func (t *Tree) AddString(name string, mode int64, s string) {
	t.AddFile(name, mode, []byte(s))
}

// AddPath adds the regular file at src (on disk) as name. The file is read
// when the archive is written.
func (t *Tree) AddPath(name string, mode int64, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("archive: %s is not a regular file", src)
	}
	t.entries = append(t.entries, Entry{Name: clean(name), Mode: mode, File: src, Size: fi.Size()})
	return nil
}

// AddLink adds a symbolic link name → target.
func (t *Tree) AddLink(name, target string) {
	t.entries = append(t.entries, Entry{Name: clean(name), Mode: 0o777, Link: target})
}

// Entries returns the entries added so far.
func (t *Tree) Entries() []Entry { return slices.Clone(t.entries) }

// InstalledSize is the sum of the file sizes, what opkg's Installed-Size
// and Synology's extractsize count.
func (t *Tree) InstalledSize() int64 {
	var n int64
	for _, e := range t.entries {
		switch {
		case e.File != "":
			n += e.Size
		case !e.Dir && e.Link == "":
			n += int64(len(e.Data))
		}
	}
	return n
}

func clean(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		panic("archive: empty entry name")
	}
	return name
}

// Write writes t as an uncompressed tar (GNU format, as ipkg-build and
// QDK write) to w. Parent directories missing from t are added, with mode
// 0755, before their first child.
func (t *Tree) Write(w io.Writer) error {
	tw := tar.NewWriter(w)
	have := map[string]bool{}
	for _, e := range t.entries {
		if e.Dir {
			have[e.Name] = true
		}
	}
	written := map[string]bool{}
	writeHdr := func(h *tar.Header) error {
		h.ModTime = Epoch
		h.Uid, h.Gid = 0, 0
		h.Uname, h.Gname = "", ""
		h.Format = tar.FormatGNU
		return tw.WriteHeader(h)
	}
	var parents func(name string) error
	parents = func(name string) error {
		dir := path.Dir(name)
		if dir == "." || written[dir] || have[dir] {
			return nil
		}
		if err := parents(dir); err != nil {
			return err
		}
		written[dir] = true
		return writeHdr(&tar.Header{Typeflag: tar.TypeDir, Name: t.Prefix + dir + "/", Mode: 0o755})
	}
	for _, e := range t.entries {
		if err := parents(e.Name); err != nil {
			return err
		}
		switch {
		case e.Dir:
			if written[e.Name] {
				continue
			}
			written[e.Name] = true
			if err := writeHdr(&tar.Header{Typeflag: tar.TypeDir, Name: t.Prefix + e.Name + "/", Mode: e.Mode}); err != nil {
				return err
			}
		case e.Link != "":
			if err := writeHdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: t.Prefix + e.Name, Linkname: e.Link, Mode: e.Mode}); err != nil {
				return err
			}
		case e.File != "":
			f, err := os.Open(e.File)
			if err != nil {
				return err
			}
			err = writeHdr(&tar.Header{Typeflag: tar.TypeReg, Name: t.Prefix + e.Name, Mode: e.Mode, Size: e.Size})
			if err == nil {
				var n int64
				n, err = io.Copy(tw, f)
				if err == nil && n != e.Size {
					err = fmt.Errorf("archive: %s changed size while being archived", e.File)
				}
			}
			f.Close()
			if err != nil {
				return err
			}
		default:
			if err := writeHdr(&tar.Header{Typeflag: tar.TypeReg, Name: t.Prefix + e.Name, Mode: e.Mode, Size: int64(len(e.Data))}); err != nil {
				return err
			}
			if _, err := tw.Write(e.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// Tar returns t as an uncompressed tar.
func (t *Tree) Tar() ([]byte, error) {
	var b bytes.Buffer
	err := t.Write(&b)
	return b.Bytes(), err
}

// TarGz returns t as a gzip-compressed tar.
func (t *Tree) TarGz() ([]byte, error) {
	var b bytes.Buffer
	zw := NewGzipWriter(&b)
	if err := t.Write(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// NewGzipWriter returns a gzip writer at the best compression whose header
// holds no name and no time, like "gzip -n".
func NewGzipWriter(w io.Writer) *gzip.Writer {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression) // the level is valid
	zw.ModTime = time.Time{}
	zw.OS = 3 // Unix, as gzip writes it on Linux
	return zw
}

// Gzip compresses b as NewGzipWriter does.
func Gzip(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw := NewGzipWriter(&out)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
