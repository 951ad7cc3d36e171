#!/usr/bin/env bash
# How fast `arca wal-push` archives WAL, beside how fast a busy PostgreSQL
# writes it: archiving falls behind only if one push takes longer than the
# server takes to fill a segment.
#
#   bench/wal_push.sh                 # 48 segments of pgbench WAL
#   BENCH_SEGMENTS=16 bench/wal_push.sh
#
# Starts a PostgreSQL 15 cluster (as the postgres user) on a free loopback
# port, runs pgbench for 30 s with 4 clients to measure the WAL rate, copies
# the segments it wrote, then pushes them one at a time, as archive_command
# does, into a fresh repository. Prints a Markdown table.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=/tmp/arca-bench-wal
SEGS=${BENCH_SEGMENTS:-48}
ARCA=${BENCH_ARCA_BIN:-$ROOT/target/release/arca}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
log() { printf '[wal-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

[ -n "${BENCH_ARCA_BIN:-}" ] || (cd "$ROOT" && cargo build --release -p arca >/dev/null 2>&1)
rm -rf "$WORK"; mkdir -p "$WORK"; chmod 755 "$WORK"
chown postgres "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
stop() { as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; }
trap stop EXIT

log "initdb and start on port $PORT"
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
wal_keep_size = 4GB
max_wal_size = 4GB
CONF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w start >/dev/null
PSQL=("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)
"$PGBIN/pgbench" -i -s 10 -q -h 127.0.0.1 -p "$PORT" -U postgres postgres >/dev/null 2>&1
START=$("${PSQL[@]}" -c "SELECT pg_current_wal_lsn()")
log "pgbench -T 30 -c 4 -j 2"
"$PGBIN/pgbench" -T 30 -c 4 -j 2 -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$WORK/pgbench.out" 2>&1
WAL_BYTES=$("${PSQL[@]}" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$START')")
TPS=$(grep -o 'tps = [0-9.]*' "$WORK/pgbench.out" | tail -1 | cut -d' ' -f3)
"${PSQL[@]}" -c "SELECT pg_switch_wal()" >/dev/null

mkdir -p "$WORK/segs"
CURRENT=$("${PSQL[@]}" -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
ls "$WORK/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | awk -v c="$CURRENT" '$0 < c' | tail -n "$SEGS" \
    | while read -r s; do cp "$WORK/data/pg_wal/$s" "$WORK/segs/"; done
N=$(ls "$WORK/segs" | wc -l)
stop

"$ARCA" init --repo "$WORK/repo" >/dev/null
log "pushing $N segments one at a time"
T0=$(date +%s.%N)
for s in "$WORK"/segs/*; do "$ARCA" wal-push --repo "$WORK/repo" "$s"; done
T1=$(date +%s.%N)
STORED=$(du -sb "$WORK/repo/logs" | cut -f1)
# Pushing the same segments again (PostgreSQL retrying after a lost reply).
T2=$(date +%s.%N)
for s in "$WORK"/segs/*; do "$ARCA" wal-push --repo "$WORK/repo" "$s"; done
T3=$(date +%s.%N)

python3 - "$N" "$T0" "$T1" "$T2" "$T3" "$STORED" "$WAL_BYTES" "$TPS" <<'PY'
import sys
n, t0, t1, t2, t3, stored, wal, tps = sys.argv[1:]
n = int(n); push = float(t1) - float(t0); again = float(t3) - float(t2)
seg = 16 << 20
rate = float(wal) / 30 / 2**20
print("| measure | value |")
print("|---|---|")
print(f"| server WAL rate under pgbench -c 4 (tps {float(tps):.0f}) | {rate:.1f} MiB/s, one 16 MiB segment every {16 / rate:.2f} s |")
print(f"| arca wal-push, {n} segments one at a time | {push / n * 1000:.0f} ms a segment, {n * 16 / push:.0f} MiB/s |")
print(f"| same segments pushed again (retries) | {again / n * 1000:.0f} ms a segment |")
print(f"| stored | {int(stored) / n / 2**20:.2f} MiB a segment ({int(stored) / (n * seg):.1%} of 16 MiB) |")
print(f"| headroom | archiving keeps up with {16 / rate / (push / n):.1f}x this server's WAL rate |")
PY
