#!/bin/sh
# install-screen.sh installs Debian's xvfb (an X server without a display)
# and imagemagick (import grabs the X screen) for demo/screenshot.js when
# Xvfb or import is not on PATH (CI machines run as root; elsewhere it
# needs sudo).
set -e
command -v Xvfb >/dev/null 2>&1 && command -v import >/dev/null 2>&1 && exit 0
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends xvfb imagemagick
