#!/bin/sh
# homenet's QPKG service script: App Center (and QTS at boot, after the
# data volume is mounted) runs it as root with start, stop or restart.

CONF=${QPKG_CONF:-/etc/config/qpkg.conf}
QPKG_NAME=homenet
GETCFG=${GETCFG:-/sbin/getcfg}
QPKG_ROOT=$($GETCFG "$QPKG_NAME" Install_Path -f "$CONF")
BIN=$QPKG_ROOT/bin/homenet
CONFIG=$QPKG_ROOT/etc/homenet.toml
PID_FILE=$QPKG_ROOT/var/homenet.pid
LOG_FILE=$QPKG_ROOT/var/homenet.log
LINK=${HOMENET_LINK:-/usr/bin/homenet} # the CLI on PATH

running() {
	[ -r "$PID_FILE" ] || return 1
	pid=$(cat "$PID_FILE")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# ensure_tun makes the kernel TUN usable for the gateway. On some models
# the tun module comes with the QVPN app.
ensure_tun() {
	if [ ! -c /dev/net/tun ]; then
		mkdir -p /dev/net
		mknod /dev/net/tun c 10 200
	fi
	grep -q '^tun ' /proc/modules 2>/dev/null || modprobe tun 2>/dev/null || true
}

start() {
	if [ "$($GETCFG "$QPKG_NAME" Enable -u -d FALSE -f "$CONF")" != "TRUE" ]; then
		echo "$QPKG_NAME is disabled in App Center."
		return 1
	fi
	running && return 0
	mkdir -p "$QPKG_ROOT/var"
	ensure_tun
	# The root file system is RAM on QTS: link the CLI at every start.
	ln -sf "$BIN" "$LINK" 2>/dev/null
	if [ -f "$LOG_FILE" ] && [ "$(wc -c <"$LOG_FILE")" -gt 1048576 ]; then
		mv -f "$LOG_FILE" "$LOG_FILE.1"
	fi
	nohup "$BIN" serve --config "$CONFIG" >>"$LOG_FILE" 2>&1 &
	echo $! >"$PID_FILE"
}

stop() {
	running || { rm -f "$PID_FILE"; return 0; }
	pid=$(cat "$PID_FILE")
	kill -TERM "$pid"
	# homenet removes its routes and rules on SIGTERM; give it 20 seconds.
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do
		sleep 1
		i=$((i + 1))
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$PID_FILE"
	return 0
}

case $1 in
start)
	start || exit 1
	;;
stop)
	stop
	;;
restart)
	stop
	start || exit 1
	;;
status)
	if running; then
		echo "$QPKG_NAME is running"
		exit 0
	fi
	echo "$QPKG_NAME is not running"
	exit 3
	;;
*)
	echo "usage: $0 {start|stop|restart|status}"
	exit 1
	;;
esac
exit 0
