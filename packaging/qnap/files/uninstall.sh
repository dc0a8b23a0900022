#!/bin/sh
# QTS runs this (as .uninstall.sh in the package's directory) when homenet
# is removed, before it deletes the directory, state included.
dir=$(dirname "$0")
"$dir/homenet.sh" stop
rm -f "${HOMENET_LINK:-/usr/bin/homenet}"
exit 0
