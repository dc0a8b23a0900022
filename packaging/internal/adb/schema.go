package adb

// The package schema of apk-tools 3 (src/apk_adb.h): schema numbers and
// the field numbers of its objects. Only what homenet writes is listed.
const (
	SchemaPackage = 0x676b6370 // "pckg"

	// Package object.
	PkgInfo    = 1
	PkgPaths   = 2
	PkgScripts = 3

	// Package info object.
	InfoName          = 1
	InfoVersion       = 2
	InfoHashes        = 3 // unique id: 20 bytes of SHA-256 (SelfHash)
	InfoDescription   = 4
	InfoArch          = 5
	InfoLicense       = 6
	InfoOrigin        = 7
	InfoMaintainer    = 8
	InfoURL           = 9
	InfoBuildTime     = 11
	InfoInstalledSize = 12
	InfoDepends       = 15

	// Dependency object.
	DepName = 1

	// Directory object (an item of the paths array).
	DirName  = 1
	DirACL   = 2
	DirFiles = 3

	// File object.
	FileName  = 1
	FileACL   = 2
	FileSize  = 3
	FileMTime = 4
	FileHash  = 5 // SHA-256 of the contents

	// ACL object.
	ACLMode  = 1
	ACLUser  = 2
	ACLGroup = 3

	// Scripts object.
	ScriptPreInstall    = 2
	ScriptPostInstall   = 3
	ScriptPreDeinstall  = 4
	ScriptPostDeinstall = 5
	ScriptPreUpgrade    = 6
	ScriptPostUpgrade   = 7
)

// Obj builds an object from field numbers: Obj(map[int]Value{InfoName:
// String("x")}) sets field 1. Field numbers start at 1.
func Obj(fields map[int]Value) Object {
	n := 0
	for i := range fields {
		n = max(n, i)
	}
	o := make(Object, n)
	for i, v := range fields {
		if i >= 1 {
			o[i-1] = v
		}
	}
	return o
}
