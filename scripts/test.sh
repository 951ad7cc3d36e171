#!/usr/bin/env bash
# Installs what Arca's tests need and runs them all. CI runs this (.ci/run).
# Today the tests need only the Rust toolchain: SQLite is built into arca.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
