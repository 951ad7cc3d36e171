#!/usr/bin/env bash
# Arca vs pgBackRest (and pg_basebackup) on a pgbench cluster: PostgreSQL 15.
#
#   bench/pg.sh                          # pgbench scale 50 (~750 MB), 60 s of pgbench
#   BENCH_PG_SCALE=5 BENCH_PG_SECONDS=10 bench/pg.sh   # quick run
#
# One cluster, one run, both tools side by side:
#   1. a fresh PostgreSQL 15 cluster (Debian's /usr/lib/postgresql/15/bin, run as
#      the postgres user, data under bench/work/run-pg, a free loopback port,
#      wal_level = replica, archive_mode = on) loaded with `pgbench -i -s 50`
#      (about 10 s here, so it is not cached). One archive_command feeds both tools:
#        arca wal-push --repo R %p && pgbackrest --stanza=bench archive-push %p
#   2. full backups: `arca backup`, `pgbackrest backup --type=full` (zstd level 3,
#      process-max = cores), and `pg_basebackup -Fp -X fetch -c fast` as a baseline
#      (plain, uncompressed).
#   3. `pgbench -T 60 -c 4 -j 2`.
#   4. incremental backups: `arca backup` again, `pgbackrest backup --type=incr`.
#   5. the source is stopped (so both restores replay to the same end of the
#      archive), then restores of the newest backup into new data directories
#      (median of 5, the tools taking turns, each after `sync`); the last
#      restore of each is started and recovered to the end of the archive, and
#      afterwards compared with the source: count(*) and sum(abalance) of
#      pgbench_accounts, count(*) of pgbench_history. Also `arca restore
#      --start`, which restores, starts and waits for recovery in one command.
#      (The source is queried only at the very end: a scan of pgbench_accounts
#      prunes the pages pgbench changed, and those prunes write hundreds of MB
#      of full-page images into the WAL that a restore would have to replay.)
#
# Before every timed backup: CHECKPOINT, pg_switch_wal() and a wait until the
# archiver is idle, then the data directory is read once (warm page cache), so
# each backup pays for its own checkpoint only and neither tool for the
# other's WAL backlog. Before every restore the repository is read once.
# "stored" = bytes the backup added to its repository without the WAL archive:
# Arca: growth of `du -sb` of the repository minus its logs/ (WAL) directory;
# pgBackRest: `du -sb` of the backup set's directory. The WAL archives (the same
# segments in both, pushed by the one archive_command) are reported apart.
#
# Environment:
#   BENCH_PG_SCALE=50            pgbench scale (50 = 5,000,000 accounts)
#   BENCH_PG_SECONDS=60          pgbench -T;  BENCH_PG_CLIENTS=4, BENCH_PG_JOBS=2
#   BENCH_PG_RATE=N              pgbench -R N (transactions per second): a lighter workload
#   BENCH_PG_VERSION=15          server binaries from /usr/lib/postgresql/VERSION/bin
#   BENCH_PG_RESTORE_RUNS=5      restore runs per tool, taking turns (the median is reported)
#   BENCH_PGBACKREST_PROCESS_MAX pgBackRest process-max (default: cores, like Arca's parallelism)
#   BENCH_PGBACKREST_BLOCK=1     pgBackRest block incremental (repo1-bundle + repo1-block; beta in 2.45)
#   BENCH_ARCA_BIN=PATH          use this arca binary instead of building target/release/arca
#   BENCH_ARCA_REV=REV           the git revision that binary was built from (for the report)
#   BENCH_KEEP=1                 keep data directories and repositories after the run
#   BENCH_WORK=DIR               work directory (default bench/work, gitignored)
#
# Output: a Markdown table on stdout, also written to $BENCH_WORK/results-pg.md
# (raw figures in results-pg.json); logs in $BENCH_WORK/run-pg/logs. Every
# server started here is stopped at exit. Exits non-zero if a restored cluster
# does not recover or does not match the source (after printing the table).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
SCALE=${BENCH_PG_SCALE:-50}
SECONDS_RUN=${BENCH_PG_SECONDS:-60}
CLIENTS=${BENCH_PG_CLIENTS:-4}
JOBS=${BENCH_PG_JOBS:-2}
PGVER=${BENCH_PG_VERSION:-15}
RESTORE_RUNS=${BENCH_PG_RESTORE_RUNS:-5}
RATE=${BENCH_PG_RATE:-}
PROCESS_MAX=${BENCH_PGBACKREST_PROCESS_MAX:-$(nproc)}
PGBR_BLOCK=${BENCH_PGBACKREST_BLOCK:-0}
KEEP=${BENCH_KEEP:-0}
PGBIN=/usr/lib/postgresql/$PGVER/bin

RUN=$WORK/run-pg
LOGS=$RUN/logs
RES=$RUN/results.env
SOCK=$RUN/sock

log() { printf '[pg-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || die "run as root: the bench installs packages and runs the servers as the postgres user"
mkdir -p "$WORK"
if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep package scripts from starting services
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi
APT_UPDATED=0
need() { # need PATH_OR_COMMAND DEBIAN_PACKAGE
    if [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; then return 0; fi
    log "installing $2"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >"$WORK/apt.log" 2>&1; then
        [ "$APT_UPDATED" = 1 ] || { apt-get update -q >>"$WORK/apt.log" 2>&1 || true; APT_UPDATED=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >>"$WORK/apt.log" 2>&1 \
            || die "apt-get install $2 failed, see $WORK/apt.log"
    fi
    [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 || die "$1 still not found after installing $2"
}
need python3 python3
need "$PGBIN/initdb" "postgresql-$PGVER"
need "$PGBIN/pgbench" "postgresql-client-$PGVER"
need pgbackrest pgbackrest
need /usr/bin/time time
id postgres >/dev/null 2>&1 || die "no postgres user (the postgresql package creates it)"

if [ -n "${BENCH_ARCA_BIN:-}" ]; then
    ARCA_SRC=$BENCH_ARCA_BIN
else
    need cargo cargo
    log "cargo build --release -p arca (no-op when up to date)"
    (cd "$ROOT" && cargo build --release -p arca) >"$WORK/cargo-build.log" 2>&1 \
        || { tail -30 "$WORK/cargo-build.log" >&2; die "cargo build --release -p arca failed (log: $WORK/cargo-build.log)"; }
    ARCA_SRC=$ROOT/target/release/arca
fi
[ -x "$ARCA_SRC" ] || die "arca binary $ARCA_SRC not found"

# The server runs archive_command and restore_command as postgres: every
# directory on the way to the arca copy and the repositories must be
# traversable by it.
p=$WORK
while [ "$p" != / ]; do
    runuser -u postgres -- test -x "$p" || die "$p is not traversable by the postgres user; set BENCH_WORK to a directory it can reach (e.g. /tmp/arca-bench)"
    p=$(dirname "$p")
done

as_pg() { runuser -u postgres -- "$@"; }

# ---------------------------------------------------------------- servers and cleanup
STARTED=()   # data directories of the servers started here
stop_server() { # stop_server DATADIR [MODE]
    [ -f "$1/postmaster.pid" ] || return 0
    as_pg "$PGBIN/pg_ctl" -D "$1" -m "${2:-immediate}" -w -t 60 stop >/dev/null 2>&1 || true
}
cleanup() {
    local rc=$? d
    for d in "${STARTED[@]}"; do stop_server "$d"; done
    if [ "$KEEP" != 1 ] && [ -d "$RUN" ]; then
        rm -rf "${RUN:?}/src" "$RUN"/restore-* "$RUN/basebackup" "$RUN/repo-arca" "$RUN/repo-pgbackrest" \
            "$RUN/pgbackrest-spool" "${RUN:?}/bin"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a previous run killed before its trap ran may have left servers behind
for d in "$RUN"/src/data "$RUN"/restore-*; do
    [ -d "$d" ] && stop_server "$d"
done
rm -rf "$RUN"
mkdir -p "$LOGS/pgbackrest" "$SOCK" "$RUN/src" "$RUN/bin" "$RUN/pgbackrest-lock" "$RUN/pgbackrest-spool"
chown -R postgres: "$RUN"
: >"$RES"
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }

ARCA=$RUN/bin/arca   # a copy the postgres user can run (restore_command names it)
install -m 755 "$ARCA_SRC" "$ARCA"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# psql_at PORT SQL: one query as postgres over TCP, unaligned output
psql_at() { "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -p "$1" -d postgres -c "$2"; }

start_server() { # start_server DATADIR LOG [pg_ctl -o OPTIONS]
    STARTED+=("$1")
    as_pg "$PGBIN/pg_ctl" -D "$1" -l "$2" -w -t 600 start ${3:+-o "$3"} >/dev/null \
        || { tail -20 "$2" >&2; die "pg_ctl start $1 failed (log: $2)"; }
}

# ---------------------------------------------------------------- the source cluster
SRC=$RUN/src/data
PORT=$(free_port)
write_conf() { # write_conf DATADIR ARCHIVE_MODE ARCHIVE_COMMAND
    cat >"$1/bench.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
wal_level = replica
max_wal_senders = 4
max_connections = 40
archive_mode = $2
archive_command = '$3'
archive_timeout = 0
log_min_messages = warning
log_checkpoints = on
EOF
    chown postgres: "$1/bench.conf"
}

# initdb + pgbench -i, with archiving off (a cluster that exists before its backups do)
load_cluster() {
    local d=$1
    as_pg "$PGBIN/initdb" -D "$d" --auth=trust -U postgres >"$LOGS/initdb.log" 2>&1 \
        || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
    echo "include 'bench.conf'" >>"$d/postgresql.conf"
    write_conf "$d" off ''
    start_server "$d" "$LOGS/load-server.log"
    log "pgbench -i -s $SCALE"
    local t0; t0=$(date +%s)
    "$PGBIN/pgbench" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$LOGS/pgbench-init.log" 2>&1 \
        || { tail -20 "$LOGS/pgbench-init.log" >&2; die "pgbench -i failed"; }
    log "loaded in $(( $(date +%s) - t0 )) s"
    stop_server "$d" fast
}
load_cluster "$SRC"

# ---------------------------------------------------------------- repositories
ARCA_REPO=$RUN/repo-arca
PGBR_REPO=$RUN/repo-pgbackrest
PGBR_CONF=$RUN/pgbackrest.conf
as_pg "$ARCA" init --repo "$ARCA_REPO" >"$LOGS/arca.init.out" 2>&1 \
    || { cat "$LOGS/arca.init.out" >&2; die "arca init failed"; }
cat >"$PGBR_CONF" <<EOF
[global]
repo1-path=$PGBR_REPO
repo1-retention-full=2
compress-type=zst
compress-level=3
process-max=$PROCESS_MAX
start-fast=y
archive-timeout=300
log-path=$RUN/logs/pgbackrest
lock-path=$RUN/pgbackrest-lock
spool-path=$RUN/pgbackrest-spool
log-level-console=info
log-level-file=detail
$([ "$PGBR_BLOCK" = 1 ] && printf 'beta=y\nrepo1-bundle=y\nrepo1-block=y\n')

[bench]
pg1-path=$SRC
pg1-port=$PORT
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
chown postgres: "$PGBR_CONF"
PGBR=(pgbackrest --config="$PGBR_CONF" --stanza=bench)

write_conf "$SRC" on "$ARCA wal-push --repo $ARCA_REPO %p && pgbackrest --config=$PGBR_CONF --stanza=bench archive-push %p"
start_server "$SRC" "$RUN/src/server.log"
log "source cluster on 127.0.0.1:$PORT ($SRC)"
as_pg "${PGBR[@]}" stanza-create >"$LOGS/pgbackrest.stanza-create.log" 2>&1 \
    || { cat "$LOGS/pgbackrest.stanza-create.log" >&2; die "pgbackrest stanza-create failed"; }
as_pg "${PGBR[@]}" check >"$LOGS/pgbackrest.check.log" 2>&1 \
    || { cat "$LOGS/pgbackrest.check.log" >&2; die "pgbackrest check failed (is archive_command working? $RUN/src/server.log)"; }

# ---------------------------------------------------------------- helpers
settle() { sync; sleep 1; }
warm() { local p; for p in "$@"; do find "$p" -type f -exec cat {} + >/dev/null 2>&1 || true; done; }
dusb() { du -sb "$1" 2>/dev/null | cut -f1; }
arca_data_bytes() { echo $(( $(dusb "$ARCA_REPO") - $( [ -d "$ARCA_REPO/logs" ] && dusb "$ARCA_REPO/logs" || echo 0) )); }

# archive_now: CHECKPOINT, switch WAL, wait until the archiver has sent it all
archive_now() {
    psql_at "$PORT" "CHECKPOINT" >/dev/null
    local seg last
    seg=$(psql_at "$PORT" "SELECT pg_walfile_name(pg_current_wal_lsn())")
    psql_at "$PORT" "SELECT pg_switch_wal()" >/dev/null
    for _ in $(seq 3000); do
        last=$(psql_at "$PORT" "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        [[ "$last" < "$seg" ]] || return 0
        sleep 0.1
    done
    die "the archiver did not archive $seg in 300 s: $(psql_at "$PORT" "SELECT failed_count || ' failures, last ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver")"
}

# timed NAME CMD...: runs CMD as postgres under /usr/bin/time; sets T (wall s),
# CPU (user+sys s) and RSS_KB (peak RSS of the largest process).
timed() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s%N)
    if ! as_pg /usr/bin/time -f '%e %U %S %M' -o "$LOGS/$name.time" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
        tail -20 "$LOGS/$name.err" >&2
        [ "${TIMED_SOFT:-0}" = 1 ] || die "$name failed: $*"
        log "ERROR: $name failed (log: $LOGS/$name.err)"
        return 1
    fi
    t1=$(date +%s%N)
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    CPU=$(tail -1 "$LOGS/$name.time" | awk '{printf "%.2f", $2+$3}')
    RSS_KB=$(tail -1 "$LOGS/$name.time" | awk '{print $4}')
    log "$name: ${T} s wall, ${CPU} s CPU, peak RSS ${RSS_KB} KiB"
}

put_timed() { # put_timed KEY: record T, CPU, RSS_KB under KEY
    put "$1.time" "$T"; put "$1.cpu" "$CPU"; put "$1.rss_kb" "$RSS_KB"
}

arca_json() { # arca_json FILE FIELD
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"
}
pgbr_last() { # pgbr_last FIELD: label | type | repo_size | repo_delta | size | delta of the newest backup
    as_pg "${PGBR[@]}" info --output=json | python3 -c '
import json, sys
b = json.load(sys.stdin)[0]["backup"][-1]
i = b.get("info", {})
r = i.get("repository", {})
print({"label": b["label"], "type": b["type"], "repo_size": r.get("size", ""), "repo_delta": r.get("delta", ""),
       "size": i.get("size", ""), "delta": i.get("delta", "")}[sys.argv[1]])' "$1"
}

before_backup() { archive_now; warm "$SRC"; settle; }

backup_arca() { # backup_arca STEP
    local before after
    before_backup
    before=$(arca_data_bytes)
    timed "arca.$1" "$ARCA" backup --repo "$ARCA_REPO" --source "postgres://postgres@127.0.0.1:$PORT/postgres" --pgdata "$SRC" --json
    after=$(arca_data_bytes)
    put_timed "arca.$1"
    put "arca.$1.stored" "$((after - before))"
    put "arca.$1.own" "$(arca_json "$LOGS/arca.$1.out" stored_bytes)"
    put "arca.$1.size" "$(arca_json "$LOGS/arca.$1.out" size)"
    put "arca.$1.duration_ms" "$(arca_json "$LOGS/arca.$1.out" duration_ms)"
}

backup_pgbr() { # backup_pgbr STEP TYPE
    local label
    before_backup
    timed "pgbackrest.$1" "${PGBR[@]}" backup --type="$2"
    put_timed "pgbackrest.$1"
    label=$(pgbr_last label)
    put "pgbackrest.$1.label" "$label"
    put "pgbackrest.$1.stored" "$(dusb "$PGBR_REPO/backup/bench/$label")"
    put "pgbackrest.$1.own" "$(pgbr_last repo_delta)"
    put "pgbackrest.$1.size" "$(pgbr_last size)"
}

# ---------------------------------------------------------------- 2. full backups
put loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"
put source_bytes "$(( $(dusb "$SRC") - $(dusb "$SRC/pg_wal") ))"
log "== full backups (source: $(du -sh --exclude=pg_wal "$SRC" | cut -f1) without pg_wal)"
backup_arca full
backup_pgbr full full

BB=$RUN/basebackup
before_backup
timed basebackup "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$BB" -Fp -X fetch -c fast
put_timed basebackup
put basebackup.stored "$(dusb "$BB")"

# ---------------------------------------------------------------- 3. pgbench
PGBENCH_ARGS="-T $SECONDS_RUN -c $CLIENTS -j $JOBS${RATE:+ -R $RATE}"
log "== pgbench $PGBENCH_ARGS"
lsn0=$(psql_at "$PORT" "SELECT pg_current_wal_lsn()")
# shellcheck disable=SC2086  # a list of flags
"$PGBIN/pgbench" $PGBENCH_ARGS -h 127.0.0.1 -p "$PORT" -U postgres postgres \
    >"$LOGS/pgbench-run.log" 2>&1 || { tail -20 "$LOGS/pgbench-run.log" >&2; die "pgbench failed"; }
put pgbench.tps "$(awk '/^tps = /{printf "%.0f", $3; exit}' "$LOGS/pgbench-run.log")"
put pgbench.xacts "$(awk -F': ' '/number of transactions actually processed/{print $2; exit}' "$LOGS/pgbench-run.log")"
put pgbench.wal_bytes "$(psql_at "$PORT" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')::bigint")"
log "pgbench: $(grep -m1 '^tps' "$LOGS/pgbench-run.log")"

# ---------------------------------------------------------------- 4. incremental backups
log "== incremental backups"
backup_arca incr
backup_pgbr incr incr

# pages that changed: the pg_basebackup copy (taken with the full backups)
# against the data directory now, 8 KiB block by block
python3 - "$BB" "$SRC" >"$LOGS/pagediff.env" <<'PY'
import os, sys
old, new = sys.argv[1], sys.argv[2]
SKIP = {"pg_wal", "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial",
        "pg_snapshots", "pg_subtrans", "pg_stat", "pg_logical"}
B = 8192
changed = total = 0
for dirpath, dirs, files in os.walk(new):
    rel = os.path.relpath(dirpath, new)
    if rel.split(os.sep)[0] in SKIP:
        dirs[:] = []
        continue
    for f in files:
        p = os.path.join(dirpath, f)
        q = os.path.join(old, rel, f)
        size = os.path.getsize(p)
        total += size
        if not os.path.exists(q):
            changed += size
            continue
        with open(p, "rb") as a, open(q, "rb") as b:
            while True:
                x = a.read(B)
                if not x:
                    break
                if x != b.read(B):
                    changed += len(x)
print("changed_bytes=%d" % changed)
print("total_bytes=%d" % total)
PY
while IFS= read -r line; do put "pagediff.${line%%=*}" "${line#*=}"; done <"$LOGS/pagediff.env"
rm -rf "$BB"

# WAL archives: the same segments, pushed by the one archive_command
archive_now
put arca.wal_bytes "$(dusb "$ARCA_REPO/logs")"
put arca.wal_files "$(find "$ARCA_REPO/logs" -type f -regextype egrep -regex '.*/[0-9A-F]{24}' | wc -l)"
put pgbackrest.wal_bytes "$(dusb "$PGBR_REPO/archive")"
put pgbackrest.wal_files "$(find "$PGBR_REPO/archive" -type f -regextype egrep -regex '.*/[0-9A-F]{24}-[0-9a-f]{40}(\.zst)?' | wc -l)"
put arca.repo_bytes "$(dusb "$ARCA_REPO")"
put pgbackrest.repo_bytes "$(dusb "$PGBR_REPO")"

# stop the source: the archive ends here for every restore
stop_server "$SRC" fast
CHECK_SQL="SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history)"

# ---------------------------------------------------------------- 5. restores
FAILED=0
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# restore_once TOOL K: restore number K of TOOL's newest backup into a new
# directory, after sync and with its repository read once; adds to TS_/CPU_/RSS_
restore_once() {
    local tool=$1 k=$2 target=$RUN/restore-$1
    rm -rf "$target"
    if [ "$tool" = arca ]; then
        warm "$ARCA_REPO"; settle
        TIMED_SOFT=1 timed "arca.restore.$k" "$ARCA" restore latest --repo "$ARCA_REPO" --to "$target" --json || return 1
    else
        install -d -m 700 -o postgres -g postgres "$target"
        warm "$PGBR_REPO"; settle
        TIMED_SOFT=1 timed "pgbackrest.restore.$k" "${PGBR[@]}" restore --pg1-path="$target" || return 1
    fi
    TS_[$tool]+=" $T"; CPU_[$tool]+=" $CPU"
    [ "$RSS_KB" -gt "${RSS_[$tool]:-0}" ] && RSS_[$tool]=$RSS_KB
    return 0
}
declare -A TS_ CPU_ RSS_ RESTORE_FAILED

# start_and_check TOOL DATADIR: start a restored cluster (archiving off, a new
# port), time until recovery has ended, compare its contents with the source
start_and_check() {
    local tool=$1 dir=$2 port t0 t1
    port=$(free_port)
    settle
    t0=$(date +%s%N)
    start_server "$dir" "$LOGS/$tool.restored-server.log" \
        "-p $port -c archive_mode=off -c listen_addresses=127.0.0.1 -c unix_socket_directories=$SOCK"
    for _ in $(seq 6000); do
        [ "$(psql_at "$port" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && break
        sleep 0.1
    done
    t1=$(date +%s%N)
    put "$tool.recover.time" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')"
    put "$tool.recover.segments" "$(grep -c 'restored log file "[0-9A-F]\{24\}"' "$LOGS/$tool.restored-server.log" || true)"
    check_contents "$tool" "$port"
    stop_server "$dir" fast
}

declare -A GOT   # what each restored cluster holds, compared with the source at the end
check_contents() { # check_contents TOOL PORT
    GOT[$1]=$(psql_at "$2" "$CHECK_SQL" 2>&1 | tr '\n' ' ' || true)
    GOT[$1]=${GOT[$1]% }
    log "$1: restored cluster holds accounts, sum(abalance), history = ${GOT[$1]}"
}

# The tools take turns (odd rounds Arca first, even rounds pgBackRest first),
# so that load from elsewhere on the machine falls on both alike.
log "== restores ($RESTORE_RUNS runs each, taking turns)"
for k in $(seq "$RESTORE_RUNS"); do
    if [ $((k % 2)) = 1 ]; then order="arca pgbackrest"; else order="pgbackrest arca"; fi
    for tool in $order; do
        [ -n "${RESTORE_FAILED[$tool]:-}" ] && continue
        restore_once "$tool" "$k" || RESTORE_FAILED[$tool]=1
    done
done
for tool in arca pgbackrest; do
    if [ -n "${RESTORE_FAILED[$tool]:-}" ]; then
        put "$tool.check" "FAILED (restore exited non-zero)"; FAILED=1
        continue
    fi
    # shellcheck disable=SC2086  # lists of numbers
    {
        put "$tool.restore.time" "$(median ${TS_[$tool]})"
        put "$tool.restore.cpu" "$(median ${CPU_[$tool]})"
        put "$tool.restore.runs" "${TS_[$tool]# }"
        log "$tool restore: median $(median ${TS_[$tool]}) s of${TS_[$tool]}"
    }
    put "$tool.restore.rss_kb" "${RSS_[$tool]}"
done
# the last restore of each: start, recover, read
for tool in arca pgbackrest; do
    [ -z "${RESTORE_FAILED[$tool]:-}" ] && start_and_check "$tool" "$RUN/restore-$tool"
    rm -rf "$RUN/restore-$tool"
done

# arca restore --start: restore, start and wait until recovery has ended, in one command
START_DIR=$RUN/restore-arca-start
START_PORT=$(free_port)
warm "$ARCA_REPO"; settle
STARTED+=("$START_DIR")
if TIMED_SOFT=1 timed arca.restore_start "$ARCA" restore latest --repo "$ARCA_REPO" --to "$START_DIR" --start --port "$START_PORT"; then
    put arca.restore_start.time "$T"
    check_contents arca_start "$START_PORT"
    stop_server "$START_DIR" fast
else
    put arca_start.check "FAILED (restore --start exited non-zero)"; FAILED=1
fi
rm -rf "$START_DIR"

start_server "$SRC" "$RUN/src/server.log"
EXPECT=$(psql_at "$PORT" "$CHECK_SQL")
put source.check "$EXPECT"
log "source: accounts, sum(abalance), history = $EXPECT"
stop_server "$SRC" fast
for tool in "${!GOT[@]}"; do
    if [ "${GOT[$tool]}" = "$EXPECT" ] && [ "${EXPECT%% *}" = "$((SCALE * 100000))" ]; then
        put "$tool.check" yes
    else
        put "$tool.check" "NO (${GOT[$tool]})"
        FAILED=1
        log "ERROR: $tool: the restored cluster holds '${GOT[$tool]}', the source '$EXPECT'"
    fi
done

# ---------------------------------------------------------------- report
put loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
put scale "$SCALE"
put pgbench_args "$PGBENCH_ARGS"
put process_max "$PROCESS_MAX"
put pgbr_block "$PGBR_BLOCK"
put restore_runs "$RESTORE_RUNS"
put cpus "$(nproc)"
put cpu_model "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
put mem_gib "$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)"
put pg_version "$("$PGBIN/postgres" --version | awk '{print $3}')"
put pgbackrest_version "$(pgbackrest version | awk '{print $2}')"
put arca_version "$("$ARCA" --version | awk '{print $2}')"
if [ -n "${BENCH_ARCA_BIN:-}" ]; then  # the checkout says nothing about a binary built elsewhere
    put git_rev "${BENCH_ARCA_REV:-unknown (BENCH_ARCA_BIN)}"
else
    put git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
fi
put date "$(date -u +%Y-%m-%d)"

python3 - "$RES" "$WORK/results-pg.md" "$WORK/results-pg.json" <<'PY'
import json, sys

res = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    res[k] = v
MiB = 2**20


def num(k):
    try:
        return float(res.get(k, ""))
    except ValueError:
        return None


def fbytes(b):
    if b is None:
        return "-"
    if abs(b) < MiB:
        return "%s B" % format(int(b), ",")
    if abs(b) < 10 * 2**30:
        return "%.1f MiB" % (b / MiB)
    return "%.2f GiB" % (b / 2**30)


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "s":
        return "%.2f s" % v
    if kind == "bytes":
        return fbytes(v)
    if kind == "rss":
        return fbytes(v * 1024)
    if kind == "n":
        return format(int(v), ",")
    return str(v)


def restore_total(t):
    a, b = num(t + ".restore.time"), num(t + ".recover.time")
    return a + b if a is not None and b is not None else None


rows = [  # (step, metric, arca key, pgbackrest key, pg_basebackup key, kind)
    ("full backup", "time", "arca.full.time", "pgbackrest.full.time", "basebackup.time", "s"),
    ("", "CPU (user+sys)", "arca.full.cpu", "pgbackrest.full.cpu", "basebackup.cpu", "s"),
    ("", "peak RSS", "arca.full.rss_kb", "pgbackrest.full.rss_kb", "basebackup.rss_kb", "rss"),
    ("", "stored, without WAL", "arca.full.stored", "pgbackrest.full.stored", "basebackup.stored", "bytes"),
    ("", "stored, tool's own report", "arca.full.own", "pgbackrest.full.own", None, "bytes"),
    ("incremental backup", "time", "arca.incr.time", "pgbackrest.incr.time", None, "s"),
    ("", "CPU (user+sys)", "arca.incr.cpu", "pgbackrest.incr.cpu", None, "s"),
    ("", "peak RSS", "arca.incr.rss_kb", "pgbackrest.incr.rss_kb", None, "rss"),
    ("", "stored, without WAL", "arca.incr.stored", "pgbackrest.incr.stored", None, "bytes"),
    ("", "stored, tool's own report", "arca.incr.own", "pgbackrest.incr.own", None, "bytes"),
    ("WAL archive", "size after both backups", "arca.wal_bytes", "pgbackrest.wal_bytes", None, "bytes"),
    ("", "segments", "arca.wal_files", "pgbackrest.wal_files", None, "n"),
    ("repository", "total size (du)", "arca.repo_bytes", "pgbackrest.repo_bytes", None, "bytes"),
    ("restore newest", "files (median of %s)" % res["restore_runs"], "arca.restore.time",
     "pgbackrest.restore.time", None, "s"),
    ("", "CPU (user+sys)", "arca.restore.cpu", "pgbackrest.restore.cpu", None, "s"),
    ("", "peak RSS", "arca.restore.rss_kb", "pgbackrest.restore.rss_kb", None, "rss"),
    ("", "start + recovery to end of archive", "arca.recover.time", "pgbackrest.recover.time", None, "s"),
    ("", "WAL segments fetched by recovery", "arca.recover.segments", "pgbackrest.recover.segments", None, "n"),
    ("", "files + start + recovery", "@arca", "@pgbackrest", None, "s"),
    ("", "`arca restore --start` (one command)", "arca.restore_start.time", None, None, "s"),
    ("", "contents match the source", "arca.check", "pgbackrest.check", None, "str"),
    ("", "contents match the source, `--start`", "arca_start.check", None, None, "str"),
]


def val(k, kind):
    if k is None:
        return None
    if k.startswith("@"):
        return restore_total(k[1:])
    return res.get(k) if kind == "str" else num(k)


out = []
out.append("### pgbench scale %s (%s accounts, data directory %s without pg_wal), %s" % (
    res["scale"], format(int(res["scale"]) * 100000, ","), fbytes(num("source_bytes")), res["date"]))
out.append("")
out.append("Machine: %s cores (%s), %s GiB RAM; local disk; PostgreSQL %s; git %s." % (
    res["cpus"], res["cpu_model"], res["mem_gib"], res["pg_version"], res["git_rev"]))
out.append("Tools: arca %s (defaults: 8 KiB blocks, zstd level 3); pgBackRest %s "
           "(`compress-type=zst`, level 3, `process-max=%s`, `start-fast=y`%s); pg_basebackup "
           "`-Fp -X fetch -c fast` (plain, uncompressed)." % (
               res["arca_version"], res["pgbackrest_version"], res["process_max"],
               ", block incremental: `beta=y`, `repo1-bundle=y`, `repo1-block=y`" if res["pgbr_block"] == "1"
               else "; block incremental off, its default"))
out.append("1-minute load average %s at the start of the measurements, %s at the end." % (
    res["loadavg_start"], res["loadavg_end"]))
out.append("Between the full and the incremental backups: `pgbench %s`, %s transactions (%s tps), "
           "%s of WAL; %s of the %s data directory differ in 8 KiB blocks (%.1f%%)." % (
               res["pgbench_args"], format(int(num("pgbench.xacts")), ","), res["pgbench.tps"],
               fbytes(num("pgbench.wal_bytes")), fbytes(num("pagediff.changed_bytes")),
               fbytes(num("pagediff.total_bytes")),
               100 * num("pagediff.changed_bytes") / num("pagediff.total_bytes")))
out.append("")
out.append("| step | metric | Arca | pgBackRest | pg_basebackup | Arca/pgBackRest |")
out.append("|---|---|---:|---:|---:|---:|")
for step, metric, ka, kp, kb, kind in rows:
    a, p, b = val(ka, kind), val(kp, kind), val(kb, kind)
    ratio = "-"
    if kind not in ("str", "n") and isinstance(a, float) and isinstance(p, float) and p:
        ratio = "%.2f" % (a / p)
    cell = (lambda v, k: "-" if k is None else (v if kind == "str" and v else fmt(v, kind)))
    out.append("| %s | %s | %s | %s | %s | %s |" % (step, metric, cell(a, ka), cell(p, kp), cell(b, kb), ratio))
out.append("")
out.append("- stored, without WAL: Arca: growth of `du -sb` of the repository minus its `logs/` (WAL); "
           "pgBackRest: `du -sb` of the backup set's directory; pg_basebackup: `du -sb` of its output.")
out.append("- tool's own report: Arca's `stored_bytes`; pgBackRest's `info` repository delta.")
out.append("- Both WAL archives hold the same segments, pushed by one `archive_command` "
           "(`arca wal-push … && pgbackrest archive-push …`).")
out.append("- Restores: files only, into a new directory, the tools taking turns, each run after `sync` with "
           "the repository read once (all runs: Arca %s s, pgBackRest %s s); then the last one is started on a "
           "new port with archiving off and timed until `pg_is_in_recovery()` is false. Arca's backups run "
           "first, so its restore also replays the WAL of pgBackRest's backup (the extra segments)." % (
               res.get("arca.restore.runs", "-").replace(" ", ", "),
               res.get("pgbackrest.restore.runs", "-").replace(" ", ", ")))
out.append("")
targets = []
def t(name, a, p, limit, kind):
    if a is None or p is None:
        targets.append("| %s | - | not measured |" % name)
        return
    targets.append("| %s | %s vs %s: %.2f× | %s |" % (
        name, fmt(a, kind), fmt(p, kind), a / p, "met" if a / p <= limit else "**not met**"))
out.append("| target | measured (Arca vs pgBackRest) | |")
out.append("|---|---|---|")
t("full backup no slower than pgBackRest", num("arca.full.time"), num("pgbackrest.full.time"), 1.0, "s")
t("incremental stored bytes at most half of pgBackRest's", num("arca.incr.stored"),
  num("pgbackrest.incr.stored"), 0.5, "bytes")
t("restore (files) no slower than pgBackRest's", num("arca.restore.time"), num("pgbackrest.restore.time"), 1.0, "s")
t("restore to a recovered cluster no slower", restore_total("arca"), restore_total("pgbackrest"), 1.0, "s")
out.extend(targets)
text = "\n".join(out) + "\n"
print(text)
open(sys.argv[2], "w").write(text)
json.dump(res, open(sys.argv[3], "w"), indent=1)
PY
log "wrote $WORK/results-pg.md"

if [ "$FAILED" != 0 ]; then
    die "a restored cluster did not recover or does not match the source"
fi
