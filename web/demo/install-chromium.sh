#!/bin/sh
# install-chromium.sh installs Debian's chromium for the browser test when
# it is not on PATH (CI machines run as root; elsewhere it needs sudo).
set -e
command -v chromium >/dev/null 2>&1 && exit 0
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update
$SUDO apt-get install -y chromium
