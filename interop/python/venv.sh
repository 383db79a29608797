#!/usr/bin/env bash
# Makes the virtualenv DIR (default: target/interop-python at the
# repository's root) with requirements.txt installed from PyPI, unless it
# has them already. Used by .ci/run and by crates/regis/tests/it/interop.rs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/../../target/interop-python}"
requirements="$here/requirements.txt"
# A stamp holding the requirements it was made from: a changed pin remakes it.
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/requirements.txt"; then
    exit 0
fi
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
    echo "venv.sh: $venv exists and is not a virtualenv; not replacing it" >&2
    exit 1
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$venv/requirements.txt"
