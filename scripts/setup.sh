#!/usr/bin/env bash
# Installs everything the project, its tests and its demo need on a fresh machine:
# Debian packages (memcached, ZooKeeper, the Thrift compiler), the statsd daemon from npm,
# a virtualenv with the package and its test/dev extras, and a second one holding reddit's
# own baseplate, the peer of the interoperability tests. With TEST_PYTHONS (e.g. "3.10 3.13",
# as scripts/test.sh sets it) also .venv-3.10, .venv-3.13, ... with the package and its test
# extra on those Pythons, for the unit part of the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    for candidate in python3.11 /root/.pyenv/versions/3.11.7/bin/python3 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
    done
fi

need_apt=()
command -v memcached >/dev/null 2>&1 || need_apt+=(memcached)
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeperd)
command -v thrift >/dev/null 2>&1 || need_apt+=(thrift-compiler)
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi

if [ ! -x .services/npm/node_modules/.bin/statsd ] && [ ! -f .services/npm/node_modules/statsd/bin/statsd ]; then
    echo "setup: installing the statsd daemon from npm"
    mkdir -p .services/npm
    npm install --silent --no-audit --no-fund --prefix .services/npm statsd >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "setup: installing the package and its dev extras"
    .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import baseplate, otel_bridge, exporters" 
    rm -f .venv/.installed-*
    touch "$stamp"
fi

peer=.services/reddit-baseplate
peer_stamp=$peer/.installed-$(sha1sum tests/interop/peer-requirements.txt | cut -c1-12)
if [ ! -f "$peer_stamp" ]; then
    echo "setup: installing reddit's baseplate for the interoperability tests"
    rm -rf "$peer"
    "$PYTHON" -m venv "$peer"
    "$peer/bin/pip" install -q -r tests/interop/peer-requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
    "$peer/bin/python" -I -c "import baseplate.core, baseplate.thrift, baseplate.integration.thrift"
    touch "$peer_stamp"
fi

# reddit's baseplate 1.5.5 (and the statsd library): the peer of the 1.5 interoperability
# test and the comparison point of the benchmarks.
bash benchmarks/setup.sh

# The unit part of the suite on other Pythons: .venv-X.Y for each X.Y of TEST_PYTHONS, found as
# pythonX.Y on PATH or in pyenv's versions (the newest X.Y.*). One at a time: each builds the
# editable install from this checkout.
find_python() {
    local version=$1 candidate
    for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python3 2>/dev/null | sort -V -r) "python$version"; do
        if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

for version in ${TEST_PYTHONS:-}; do
    venv=.venv-$version
    venv_stamp=$venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
    [ -f "$venv_stamp" ] && continue
    if ! interpreter=$(find_python "$version"); then
        echo "setup: no Python $version found (PATH, pyenv): cannot create $venv" >&2
        exit 1
    fi
    echo "setup: installing the package and its test extra in $venv ($interpreter)"
    [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
    log=$venv/install.log
    if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -e ".[test]"; } >"$log" 2>&1; then
        grep -v "^WARNING: Location" "$log" >&2 || true
        echo "setup: installing the package in $venv failed (log: $log)" >&2
        exit 1
    fi
    "$venv/bin/python" -c "import baseplate, otel_bridge, exporters"
    rm -f "$venv"/.installed-*
    touch "$venv_stamp"
done
