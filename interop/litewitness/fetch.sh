#!/usr/bin/env bash
# Unpacks Debian sid's torchwood package (litewitness and witnessctl, Go,
# linked to libc alone) into DIR (default: target/torchwood at the
# repository's root), unless it is there already. Used by .ci/run for
# crates/regis/tests/it/litewitness.rs.
#
# apt runs on a throwaway configuration in a temporary directory (its own
# sources, lists and status file, none of the system's settings), and only
# downloads: nothing is installed and the system's libc is never upgraded.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/../../target/torchwood}"
if [ -x "$dir/usr/bin/litewitness" ] && [ -x "$dir/usr/bin/witnessctl" ] && [ -f "$dir/version" ]; then
    exit 0
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ ! -f "$keyring" ]; then
    echo "fetch.sh: $keyring not found (Debian's debian-archive-keyring)" >&2
    exit 1
fi

apt_dir="$(mktemp -d)"
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/etc/apt/sources.list.d" "$apt_dir/etc/apt/apt.conf.d" \
    "$apt_dir/etc/apt/preferences.d" "$apt_dir/lists/partial" \
    "$apt_dir/archives/partial" "$apt_dir/download"
touch "$apt_dir/status"
cat >"$apt_dir/etc/apt/sources.list.d/sid.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: $keyring
EOF
# APT_CONFIG is read before anything under /etc/apt, and its Dir moves
# every other configuration file into the temporary directory.
cat >"$apt_dir/apt.conf" <<EOF
Dir "$apt_dir/";
Dir::State::status "$apt_dir/status";
Dir::State::lists "$apt_dir/lists/";
Dir::Cache "$apt_dir/";
Dir::Cache::archives "$apt_dir/archives/";
Acquire::Languages "none";
// The index's signature is checked; its expiry is not, so a machine whose
// clock runs ahead of the mirror (or a caching proxy) still fetches. A stale
// index can only give an older torchwood, and the tests check what it does.
Acquire::Check-Valid-Until "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
// The download directory is the temporary one, which apt's _apt user cannot
// enter; as root apt would warn and download as root anyway.
APT::Sandbox::User "root";
EOF
export APT_CONFIG="$apt_dir/apt.conf"
apt-get update -q
(cd "$apt_dir/download" && apt-get download -q torchwood)
deb="$(ls "$apt_dir"/download/torchwood_*.deb)"

rm -rf "$dir"
mkdir -p "$dir"
# The two programs the tests run, not the package's other tools.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" ./usr/bin/litewitness ./usr/bin/witnessctl
dpkg-deb -f "$deb" Version >"$dir/version"
echo "fetch.sh: torchwood $(cat "$dir/version") from Debian sid in $dir"
