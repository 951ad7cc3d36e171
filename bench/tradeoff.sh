#!/usr/bin/env bash
# Block size, frame size and compression level against stored growth, index
# size and speed, on the databases bench/sqlite.sh generates and caches.
#
#   bench/tradeoff.sh                   # 1 GiB (run bench/sqlite.sh once first)
#   BENCH_SIZE_MB=64 bench/tradeoff.sh  # quick
#
# For each setting: a fresh repository, a first backup of the base database,
# a backup of the mutated one (~5% of 4 KiB pages changed), then a restore.
# Prints a Markdown table.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
SIZE_MB=${BENCH_SIZE_MB:-1024}
ARCA=${BENCH_ARCA_BIN:-$ROOT/target/release/arca}
(cd "$ROOT" && cargo build --release -p arca >/dev/null 2>&1)

BASE=$(ls "$WORK"/sqlite-"${SIZE_MB}"mb-s42-*.db 2>/dev/null | grep -v -- '-m7-' | head -1 || true)
MUT=$(ls "$WORK"/sqlite-"${SIZE_MB}"mb-s42-*-m7-*.db 2>/dev/null | head -1 || true)
[ -f "$BASE" ] && [ -f "$MUT" ] || { echo "run BENCH_SIZE_MB=$SIZE_MB bench/sqlite.sh first" >&2; exit 1; }
CHANGED=$(python3 "$BENCH_DIR/pagediff.py" --json "$BASE" "$MUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["changed_bytes"])')

T=$WORK/tradeoff
SRC=$T/src.db
secs() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "| block | frame | level | first backup s | repo after first MiB | index MiB | incremental s | added MiB | growth ratio | restore s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
run() { # run BLOCK FRAME LEVEL
    rm -rf "$T"; mkdir -p "$T"
    "$ARCA" init --repo "$T/repo" --block-size "$1" --frame-size "$2" --compression-level "$3" >/dev/null
    cp "$BASE" "$SRC"; cat "$SRC" >/dev/null
    local t1 t2 tr first inc idx
    t1=$( { /usr/bin/time -f %e "$ARCA" backup --repo "$T/repo" --source "sqlite://$SRC" --json >"$T/b1.json"; } 2>&1 | tail -1)
    first=$(du -sb "$T/repo" | cut -f1)
    idx=$(du -sb "$T/repo/index" | cut -f1)
    cp "$MUT" "$SRC"; cat "$SRC" >/dev/null
    t2=$( { /usr/bin/time -f %e "$ARCA" backup --repo "$T/repo" --source "sqlite://$SRC" --json >"$T/b2.json"; } 2>&1 | tail -1)
    inc=$(( $(du -sb "$T/repo" | cut -f1) - first ))
    tr=$( { /usr/bin/time -f %e "$ARCA" restore latest --repo "$T/repo" --to "$T/out.db" >/dev/null; } 2>&1 | tail -1)
    cmp -s "$T/out.db" "$MUT" || { echo "restore differs for $*" >&2; exit 1; }
    awk -v b="$1" -v f="$2" -v l="$3" -v t1="$t1" -v first="$first" -v idx="$idx" -v t2="$t2" -v inc="$inc" -v ch="$CHANGED" -v tr="$tr" \
        'BEGIN{m=1048576; printf "| %s | %d KiB | %s | %.2f | %.1f | %.2f | %.2f | %.1f | %.2f | %.2f |\n", (b==0?"page (4096)":b), f/1024, l, t1, first/m, idx/m, t2, inc/m, inc/ch, tr}'
}
# BENCH_CONFIGS: "BLOCK FRAME LEVEL;…" (block 0 = the database's page size)
IFS=';' read -ra CONFIGS <<<"${BENCH_CONFIGS:-0 1048576 3;8192 1048576 3;16384 1048576 3;65536 1048576 3;0 262144 3;0 262144 1;0 1048576 1}"
for cfg in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2086
    run $cfg
done
rm -rf "$T"
