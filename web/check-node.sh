#!/bin/sh
# check-node.sh makes sure Node.js 20 or later and npm are there for the
# web tests: it installs Debian's nodejs and npm when node is missing, and
# exits 1, saying why, when no Node.js 20 can be had (Debian 12 ships 18).
set -e
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update && $SUDO apt-get install -y nodejs npm || true
fi
if ! command -v node >/dev/null 2>&1; then
	echo "web tests: no Node.js, and none could be installed" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "web tests: Node.js $(node --version) is too old: they need 20 or later (nodesource.com or Debian 13)" >&2
	exit 1
fi
