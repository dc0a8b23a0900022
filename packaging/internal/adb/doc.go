// Package adb writes apk-tools v3 "ADB" files, the container of APKv3
// packages (.apk on OpenWrt 25.12 and Alpine), in Go alone, so that a
// release build needs no apk-tools.
//
// An ADB file is the magic "ADB." and a schema number, then blocks: one
// ADB block holding a tree of typed values (the package metadata), SIG
// blocks signing it, and DATA blocks with file contents. A value is a
// 32-bit word: 4 bits of type and 28 of either the value itself (small
// integers, null) or the offset of its data in the ADB block (blobs,
// large integers, objects and arrays). Objects and arrays are runs of such
// words whose first word is their count; object slots are numbered by the
// schema, which lives in apk-tools only (src/apk_adb.h). The whole file
// may be deflated behind the magic "ADBd".
//
// The format is described in apk-tools' doc/apk-v3.5.scd and defined by its
// src/adb.c and src/adb_comp.c (v3.0.6); this package follows them and
// checks itself against apk in packaging/openwrt's tests.
//
// Parse reads files back, for tests and for checking what was written; it
// is not used to install anything.
package adb
