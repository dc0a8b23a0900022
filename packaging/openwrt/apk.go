package openwrt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"homenet/packaging"
	"homenet/packaging/internal/adb"
	"homenet/packaging/internal/archive"
)

// Paths of the apk metadata OpenWrt 25.12 keeps beside the files
// (include/package-pack.mk writes them into every package): the file list
// default_postinst and default_prerm read to find init scripts and
// uci-defaults, and the conffiles sysupgrade saves, with the checksums
// they were shipped with.
const (
	APKListPath          = "/lib/apk/packages/homenet.list"
	APKConffilesPath     = "/lib/apk/packages/homenet.conffiles"
	APKConffilesStatPath = "/lib/apk/packages/homenet.conffiles_static"
)

// Conffiles are the package's config files. apk 3 has no conffiles field:
// it keeps any file under /etc that was changed since it installed it,
// and writes the package's new version beside it as <name>.apk-new.
var Conffiles = []string{ConfigPath}

// APKScripts are the .apk's scripts by apk's name for them.
func APKScripts() map[string][]byte {
	post := file("apk-post-install")
	return map[string][]byte{
		"post-install": post,
		// As package-pack.mk: post-install with PKG_UPGRADE=1, so that
		// default_postinst restarts the service without enabling it again.
		"post-upgrade":  append([]byte("#!/bin/sh\nexport PKG_UPGRADE=1\n"), withoutShebang(post)...),
		"pre-deinstall": append(file("apk-pre-deinstall"), withoutShebang(file("prerm-pkg"))...),
	}
}

func withoutShebang(b []byte) []byte {
	if _, rest, ok := strings.Cut(string(b), "\n"); ok && strings.HasPrefix(string(b), "#!") {
		return []byte(rest)
	}
	return b
}

// apkScriptFields maps script names to their field in the scripts object.
var apkScriptFields = map[string]int{
	"pre-install":    adb.ScriptPreInstall,
	"post-install":   adb.ScriptPostInstall,
	"pre-deinstall":  adb.ScriptPreDeinstall,
	"post-deinstall": adb.ScriptPostDeinstall,
	"pre-upgrade":    adb.ScriptPreUpgrade,
	"post-upgrade":   adb.ScriptPostUpgrade,
}

// APKFileName is the .apk's name: homenet-<version>_<arch>.apk. OpenWrt
// names its own homenet-<version>.apk in a directory per arch; the arch in
// the name lets every arch share dist/.
func (p Package) APKFileName() string {
	return fmt.Sprintf("%s-%s_%s.apk", packaging.Name, p.Version.Opkg(), p.Arch)
}

// APK returns the .apk, signed by key unless key is nil.
func (p Package) APK(key *adb.Key) ([]byte, error) {
	if err := checkArch(p.Arch); err != nil {
		return nil, err
	}
	data, err := p.data()
	if err != nil {
		return nil, err
	}
	files, err := apkFiles(data)
	if err != nil {
		return nil, err
	}
	files = append(files, apkMeta(files)...)
	spec := apkSpec{
		Name:        packaging.Name,
		Version:     p.Version.Opkg(),
		Arch:        p.Arch,
		Description: packaging.OneLineDescription(),
		License:     packaging.License,
		Origin:      packaging.Source,
		Maintainer:  packaging.Maintainer,
		Depends:     strings.Split(strings.ReplaceAll(Depends, " ", ""), ","),
		Files:       files,
		Scripts:     APKScripts(),
	}
	if key != nil {
		spec.Keys = []*adb.Key{key}
	}
	return spec.Bytes()
}

// WriteAPK writes the .apk into dir and returns its path.
func (p Package) WriteAPK(dir string, key *adb.Key) (string, error) {
	b, err := p.APK(key)
	if err != nil {
		return "", fmt.Errorf("openwrt apk %s: %w", p.Arch, err)
	}
	out := filepath.Join(dir, p.APKFileName())
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// checkArch refuses an arch that no target lists: apk would install the
// package nowhere.
func checkArch(arch string) error {
	var known []string
	for _, t := range packaging.Targets {
		known = append(known, t.OpenWrt...)
	}
	if !slices.Contains(known, arch) {
		return fmt.Errorf("unknown OpenWrt arch %q; known: %s", arch, strings.Join(known, ", "))
	}
	return nil
}

// apkFiles reads the files of data (directories are implied by them).
func apkFiles(data *archive.Tree) ([]apkFile, error) {
	var out []apkFile
	for _, e := range data.Entries() {
		switch {
		case e.Dir:
			continue
		case e.Link != "":
			return nil, fmt.Errorf("%s: symlinks are not supported in .apk packages yet", e.Name)
		}
		b := e.Data
		if e.File != "" {
			var err error
			if b, err = os.ReadFile(e.File); err != nil {
				return nil, err
			}
		}
		out = append(out, apkFile{Path: "/" + e.Name, Mode: e.Mode, Data: b})
	}
	return out, nil
}

// apkMeta returns OpenWrt's /lib/apk/packages files for files.
func apkMeta(files []apkFile) []apkFile {
	var list []string
	for _, f := range files {
		list = append(list, f.Path)
	}
	slices.Sort(list)
	var static strings.Builder
	for _, c := range Conffiles {
		i := slices.IndexFunc(files, func(f apkFile) bool { return f.Path == c })
		sum := sha256.Sum256(files[i].Data)
		fmt.Fprintf(&static, "%s %s\n", c, hex.EncodeToString(sum[:]))
	}
	return []apkFile{
		{Path: APKListPath, Mode: 0o644, Data: []byte(strings.Join(list, "\n") + "\n")},
		{Path: APKConffilesPath, Mode: 0o644, Data: []byte(strings.Join(Conffiles, "\n") + "\n")},
		{Path: APKConffilesStatPath, Mode: 0o644, Data: []byte(static.String())},
	}
}

// apkFile is one regular file of an .apk, owned by root.
type apkFile struct {
	Path string // absolute
	Mode int64  // permission bits
	Data []byte
}

// apkSpec is everything an .apk holds, in apk's terms.
type apkSpec struct {
	Name, Version, Arch                           string
	Description, License, Origin, Maintainer, URL string
	Depends                                       []string // package names
	Files                                         []apkFile
	Scripts                                       map[string][]byte // by apk name: post-install, …
	Keys                                          []*adb.Key
}

var (
	// apkNameRE is what apk accepts as a package name (APK_CTYPE_PACKAGE_NAME,
	// starting with a letter or digit).
	apkNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+_.-]*$`)
	// apkVersionRE is the part of apk's version grammar OpenWrt uses:
	// digits and dots, an optional letter, suffixes like _rc1, and -rN.
	apkVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$`)
)

// Bytes returns the .apk: the ADB block (info, paths, scripts), the
// signatures and a DATA block per non-empty file, deflated, as apk mkpkg
// writes it.
func (s apkSpec) Bytes() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	paths, data, size := s.paths()
	var deps adb.Array
	for _, d := range slices.Sorted(slices.Values(s.Depends)) {
		deps = append(deps, adb.Obj(map[int]adb.Value{adb.DepName: adb.String(d)}))
	}
	info := adb.Obj(map[int]adb.Value{
		adb.InfoName:          adb.String(s.Name),
		adb.InfoVersion:       adb.String(s.Version),
		adb.InfoHashes:        adb.SelfHash(20),
		adb.InfoDescription:   adb.String(s.Description),
		adb.InfoArch:          adb.String(s.Arch),
		adb.InfoLicense:       adb.String(s.License),
		adb.InfoOrigin:        adb.String(s.Origin),
		adb.InfoMaintainer:    adb.String(s.Maintainer),
		adb.InfoURL:           adb.String(s.URL),
		adb.InfoInstalledSize: adb.Int(max(size, 1)),
		adb.InfoDepends:       deps,
	})
	scripts := map[int]adb.Value{}
	for name, b := range s.Scripts {
		scripts[apkScriptFields[name]] = adb.Blob(b)
	}
	root := adb.Obj(map[int]adb.Value{
		adb.PkgInfo:    info,
		adb.PkgPaths:   paths,
		adb.PkgScripts: adb.Obj(scripts),
	})
	return adb.File{Schema: adb.SchemaPackage, Root: root, Data: data, Keys: s.Keys}.Bytes()
}

// check refuses what apk would refuse, naming the field and value.
func (s apkSpec) check() error {
	if !apkNameRE.MatchString(s.Name) {
		return fmt.Errorf("apk package name %q: want letters, digits and +_.-", s.Name)
	}
	if !apkVersionRE.MatchString(s.Version) {
		return fmt.Errorf("apk version %q: want something like 1.2.3-r45", s.Version)
	}
	if s.Arch == "" || strings.ContainsAny(s.Arch, " /") {
		return fmt.Errorf("apk arch %q: want an arch name such as x86_64", s.Arch)
	}
	for _, d := range s.Depends {
		if !apkNameRE.MatchString(d) {
			return fmt.Errorf("apk dependency %q: want a package name", d)
		}
	}
	for name := range s.Scripts {
		if _, ok := apkScriptFields[name]; !ok {
			return fmt.Errorf("apk script %q: want one of pre-install, post-install, pre-deinstall, post-deinstall, pre-upgrade, post-upgrade", name)
		}
	}
	seen := map[string]bool{}
	for _, f := range s.Files {
		if !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("apk file %q: want a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("apk file %q is in the package twice", f.Path)
		}
		seen[f.Path] = true
	}
	return nil
}

// paths returns the paths array (every directory, sorted by name, root
// "" first, each with its files sorted by name, as apk reads them), the
// DATA block payloads that go with it and the installed size.
func (s apkSpec) paths() (adb.Array, [][]byte, uint64) {
	dirs := map[string][]apkFile{"": nil}
	for _, f := range s.Files {
		dir := strings.TrimPrefix(path.Dir(f.Path), "/")
		dirs[dir] = append(dirs[dir], f)
		for d := dir; d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = nil
			}
			if !strings.Contains(d, "/") {
				break
			}
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	})
	var (
		paths adb.Array
		data  [][]byte
		size  uint64
	)
	mtime := adb.Int(archive.Epoch.Unix())
	for i, d := range names {
		fs := dirs[d]
		slices.SortFunc(fs, func(a, b apkFile) int { return strings.Compare(path.Base(a.Path), path.Base(b.Path)) })
		var files adb.Array
		for j, f := range fs {
			sum := sha256.Sum256(f.Data)
			files = append(files, adb.Obj(map[int]adb.Value{
				adb.FileName:  adb.String(path.Base(f.Path)),
				adb.FileACL:   acl(f.Mode),
				adb.FileSize:  adb.Int(len(f.Data)),
				adb.FileMTime: mtime,
				adb.FileHash:  adb.Blob(sum[:]),
			}))
			size += uint64(len(f.Data))
			if len(f.Data) > 0 {
				// struct adb_data_package: 1-based path and file index.
				hdr := binary.LittleEndian.AppendUint32(nil, uint32(i+1))
				hdr = binary.LittleEndian.AppendUint32(hdr, uint32(j+1))
				data = append(data, append(hdr, f.Data...))
			}
		}
		paths = append(paths, adb.Obj(map[int]adb.Value{
			adb.DirName:  adb.String(d),
			adb.DirACL:   acl(0o755),
			adb.DirFiles: files,
		}))
	}
	return paths, data, size
}

func acl(mode int64) adb.Object {
	return adb.Obj(map[int]adb.Value{
		adb.ACLMode:  adb.Int(mode & 0o7777),
		adb.ACLUser:  adb.String("root"),
		adb.ACLGroup: adb.String("root"),
	})
}
