#!/usr/bin/env bash
# The cost of `arca backup --check-source` (PRAGMA quick_check on the image
# before it is read), next to a plain first backup and to SQLite's own
# `PRAGMA quick_check` run alone, on the benchmark database.
#
#   bench/check_source.sh                    # 1024 MiB
#   BENCH_SIZE_MB=256 bench/check_source.sh  # quicker
#
# Each figure is the median of three runs on a warm page cache, each backup
# into a fresh repository.  BENCH_ARCA_BIN=PATH uses that binary instead of
# building target/release/arca; BENCH_WORK=DIR (default bench/work).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
SIZE=${BENCH_SIZE_MB:-1024}
mkdir -p "$WORK"
DB="$WORK/check-source-$SIZE.db"
[ -f "$DB" ] || python3 "$BENCH_DIR/gen_sqlite.py" "$DB" --size-mb "$SIZE" --quiet
if [ -n "${BENCH_ARCA_BIN:-}" ]; then
    ARCA=$BENCH_ARCA_BIN
else
    (cd "$ROOT" && cargo build --release -q -p arca)
    ARCA=$ROOT/target/release/arca
fi

secs() { # command... → seconds, to stdout
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

backup() { # flags...
    rm -rf "$WORK/check-source-repo"
    "$ARCA" init --repo "$WORK/check-source-repo" >/dev/null
    cat "$DB" >/dev/null
    secs "$ARCA" backup --repo "$WORK/check-source-repo" --source "sqlite://$DB" "$@"
}
quick_check() {
    cat "$DB" >/dev/null
    secs python3 -c "import sqlite3,sys; r=sqlite3.connect('file:$DB?mode=ro', uri=True).execute('PRAGMA quick_check').fetchall(); sys.exit(r != [('ok',)])"
}

plain=(); checked=(); alone=()
for _ in 1 2 3; do
    plain+=("$(backup)")
    checked+=("$(backup --check-source)")
    alone+=("$(quick_check)")
done
p=$(median "${plain[@]}"); c=$(median "${checked[@]}"); q=$(median "${alone[@]}")
echo "| $SIZE MiB database | seconds (median of 3) |"
echo "|---|---:|"
printf '| arca backup | %.2f |\n' "$p"
printf '| arca backup --check-source | %.2f |\n' "$c"
printf '| PRAGMA quick_check alone (python3 sqlite3) | %.2f |\n' "$q"
printf '| cost of --check-source | +%.0f %% |\n' "$(echo "($c - $p) / $p * 100" | bc -l)"
