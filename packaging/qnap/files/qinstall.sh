#!/bin/sh
# homenet's QPKG installer (our own, not QDK's qinstall.sh). The .qpkg's
# header runs it in the directory where it unpacked control.tar.gz (this
# script, qpkg.cfg, package_routines) and data.tar.gz.
#
# It installs into the existing Install_Path on an upgrade, else into
# .qpkg/homenet on the volume App Center chose ($QINSTALL_PATH) or the
# volume of the Public share; keeps etc/homenet.toml and var/ (the state);
# registers the package in /etc/config/qpkg.conf; and starts it.

GETCFG=${GETCFG:-/sbin/getcfg}
SETCFG=${SETCFG:-/sbin/setcfg}
CONF=${QPKG_CONF:-/etc/config/qpkg.conf}
SMB_CONF=${SMB_CONF:-/etc/config/smb.conf}
PROGRESS=${PROGRESS:-/tmp/update_process}

# shellcheck source=/dev/null # written by packaging/qnap
. ./qpkg.cfg

progress() { echo "$1" >"$PROGRESS" 2>/dev/null; }

fail() {
	echo "$1" >&2
	/sbin/log_tool -t2 -uSystem -p127.0.0.1 -mlocalhost -a "[App Center] $QPKG_DISPLAY_NAME: $1" 2>/dev/null
	progress -1
	exit 1
}

progress 0
dir=$($GETCFG "$QPKG_NAME" Install_Path -f "$CONF")
if [ -z "$dir" ]; then
	base=$QINSTALL_PATH
	if [ -z "$base" ]; then
		public=$($GETCFG Public path -f "$SMB_CONF")
		[ -n "$public" ] || fail "the Public share was not found; cannot choose a volume"
		base=${public%/*}/.qpkg
	fi
	dir=$base/$QPKG_NAME
fi

progress 1
if [ -x "$dir/$QPKG_SERVICE_PROGRAM" ]; then
	"$dir/$QPKG_SERVICE_PROGRAM" stop
fi
mkdir -p "$dir" || fail "cannot create $dir"
tar -xzf data.tar.gz -C "$dir" || fail "cannot unpack data.tar.gz into $dir"
mkdir -p "$dir/etc" "$dir/var" || fail "cannot create $dir/etc and $dir/var"
chmod 0700 "$dir/var"
if [ ! -f "$dir/etc/homenet.toml" ]; then
	cp "$dir/etc/homenet.toml.default" "$dir/etc/homenet.toml" || fail "cannot install the config"
	chmod 0600 "$dir/etc/homenet.toml"
fi

set_field() { $SETCFG "$QPKG_NAME" "$1" "$2" -f "$CONF"; }
set_field Name "$QPKG_NAME"
set_field Display_Name "$QPKG_DISPLAY_NAME"
set_field Version "$QPKG_VER"
set_field Author "$QPKG_AUTHOR"
set_field QPKG_File "$QPKG_NAME.qpkg"
set_field Date "$(date +%F)"
set_field Shell "$dir/$QPKG_SERVICE_PROGRAM"
set_field Install_Path "$dir"
set_field Config_Path "$dir/etc/homenet.toml"
set_field RC_Number "$QPKG_RC_NUM"
set_field Service_Port "$QPKG_SERVICE_PORT"
set_field FW_Ver_Min "$QTS_MINI_VERSION"
set_field Visible 1
set_field Status complete
# Enabled on a first install; an upgrade keeps the user's choice.
if [ -z "$($GETCFG "$QPKG_NAME" Enable -f "$CONF")" ]; then
	set_field Enable TRUE
fi

progress 2
"$dir/$QPKG_SERVICE_PROGRAM" start
progress 3
echo "$QPKG_DISPLAY_NAME $QPKG_VER installed in $dir"
exit 0
