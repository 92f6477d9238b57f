#!/usr/bin/env bash
# Regenerates the committed Python code for baseplate's own Thrift IDL
# (baseplate/thrift/baseplate.thrift -> baseplate/thrift/gen/baseplate/).
# Needs the Apache Thrift compiler (`thrift`, Debian package thrift-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."

idl=baseplate/thrift/baseplate.thrift
out=baseplate/thrift/gen

command -v thrift >/dev/null 2>&1 || { echo "gen-thrift: the thrift compiler is not installed" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Plain `py` output: relative imports inside the generated package, and structs that work
# with the pure-Python and the accelerated (fastbinary) protocols of the thrift runtime.
thrift --gen py -out "$tmp" "$idl"
# The generated command-line client is not part of the library.
find "$tmp" -name '*-remote' -delete

# The IDL's namespace is baseplate.thrift (what including IDLs import); the generated
# modules only import each other relatively, so they can live at gen/baseplate/.
rm -rf "$out"
mkdir -p "$out/baseplate"
cp -r "$tmp"/baseplate/thrift/. "$out"/baseplate/
cat > "$out/__init__.py" <<'PY'
"""Python code generated from baseplate/thrift/baseplate.thrift by scripts/gen-thrift.sh."""
PY
echo "gen-thrift: regenerated $out from $idl ($(thrift --version))"
