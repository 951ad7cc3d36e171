#!/usr/bin/env bash
# Arca vs mydumper/myloader and mariadb-dump on a MariaDB 10.11 server.
#
#   bench/mysql.sh                       # 8 sysbench-like tables of 500,000 rows (~1 GiB)
#   BENCH_ROWS=50000 bench/mysql.sh      # quick run
#
# One server, one run, every tool on the same data:
#   1. a fresh MariaDB server (Debian's mariadbd, run as the mysql user when
#      root, data under bench/work/run-mysql, a free loopback port, binary log
#      on in ROW format, a buffer pool that holds the data set) loaded with
#      database `bench`: BENCH_TABLES sysbench-like tables sbtest1.. of
#      BENCH_ROWS rows (id int primary key, k int with a secondary key,
#      c char(120) and pad char(60) of random 11-digit groups, as sysbench's
#      prepare fills them), `blobs` (1 MiB of random bytes a row; 64 rows at
#      500,000) and `nopk`, a table without a primary key (2/5 of BENCH_ROWS).
#      Generated with the Sequence engine and RAND() seeded per table (the
#      same rows in every run; the blobs come from RANDOM_BYTES()), outside
#      the binary log; every table is then read once, so all of it is in the
#      buffer pool before the first timed read.
#   2. Arca: first backup into a fresh repository (median of BENCH_RUNS, each
#      into a new repository), a backup of the unchanged database, then 1% of
#      the rows of each sbtest table (ids drawn at random) get a new `c` and
#      an incremental backup follows (one run each).
#   3. peers, on the database as it is now: `mydumper -t N -c` (gzip, the
#      only compression of Debian's mydumper 0.10), `mydumper -t N` (no
#      compression) and `mariadb-dump --single-transaction --quick | zstd -1
#      -TN`, each the median of BENCH_RUNS into a new directory or file.
#   4. restores, BENCH_RUNS rounds taking turns, each into a fresh database:
#      `arca restore latest --rename bench:bench_arca --parallelism N`,
#      `myloader -t N -e` from the gzip dump (-e: the rows go into the binary
#      log, as Arca's and the mariadb client's do; myloader's default leaves
#      them out), and `zstd -dc | mariadb`. The uncompressed dump is timed,
#      not restored: it is removed at once to spare the disk. After every
#      restore each table is compared with the source by CHECKSUM TABLE and
#      SHOW CREATE TABLE (AUTO_INCREMENT counters aside).
#
# Before every timed step the server's dirty pages are written out, its old
# binary logs purged and the disk synced, so no step pays for another's writes.
# Every timed step runs under /usr/bin/time -v: wall time, CPU (user+sys) and
# peak RSS of the largest process; "server CPU" is what mariadbd used meanwhile
# (from /proc). Sizes are `du -sb`: Arca's its repository after the first
# backup and the repository's growth after the later ones, the peers' their
# dump directory or file. N = BENCH_THREADS for every tool.
#
# Environment:
#   BENCH_ROWS=500000          rows of each sbtest table
#   BENCH_TABLES=8             sbtest tables
#   BENCH_BLOBS=N              rows of 1 MiB in `blobs` (default 64 * ROWS / 500000, at least 4)
#   BENCH_NOPK_ROWS=N          rows of `nopk` (default 2/5 of BENCH_ROWS)
#   BENCH_UPDATE_PCT=1         percent of each sbtest table's rows updated before the incremental
#   BENCH_THREADS=2            threads/connections of every tool (arca --parallelism, -t, zstd -T)
#   BENCH_RUNS=3               runs of each write-heavy step (full backups, dumps, restores); medians reported
#   BENCH_BUFFER_POOL=2G       innodb_buffer_pool_size of the server
#   BENCH_SKIP_PEERS=1         run Arca only
#   BENCH_ARCA_INIT_FLAGS=...  extra flags for `arca init`, e.g. "--compression-level 1"
#   BENCH_ARCA_BIN=PATH        use this arca binary instead of building target/release/arca
#   BENCH_ARCA_REV=REV         the git revision that binary was built from (for the report)
#   BENCH_KEEP=1               keep the server's data, the repository and the dumps
#   BENCH_WORK=DIR             work directory (default bench/work, gitignored)
#
# Output: a Markdown table on stdout, also written to $BENCH_WORK/results-mysql.md
# (raw figures in results-mysql.json); logs in $BENCH_WORK/run-mysql/logs. The
# server is stopped at exit. Exits non-zero if a restore fails or a restored
# table differs from the source (after printing the table).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
ROWS=${BENCH_ROWS:-500000}
NTABLES=${BENCH_TABLES:-8}
BLOBS=${BENCH_BLOBS:-$(( ROWS * 64 / 500000 > 4 ? ROWS * 64 / 500000 : 4 ))}
NOPK_ROWS=${BENCH_NOPK_ROWS:-$(( ROWS * 2 / 5 ))}
UPDATE_PCT=${BENCH_UPDATE_PCT:-1}
THREADS=${BENCH_THREADS:-2}
RUNS=${BENCH_RUNS:-3}
BUFFER_POOL=${BENCH_BUFFER_POOL:-2G}
SKIP_PEERS=${BENCH_SKIP_PEERS:-0}
ARCA_INIT_FLAGS=${BENCH_ARCA_INIT_FLAGS:-}
KEEP=${BENCH_KEEP:-0}

RUN=$WORK/run-mysql
LOGS=$RUN/logs
RES=$RUN/results.env   # key=value lines, rendered into the table at the end
SRV=$RUN/server
SOCK=$SRV/sock
DB=bench
USER_=bench
PW=bench-pw
TABLES="$(seq -f 'sbtest%g' 1 "$NTABLES" | tr '\n' ' ')blobs nopk"

log() { printf '[mysql-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
mkdir -p "$WORK"
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
if [ "$IS_ROOT" = 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then  # keep package scripts from starting services
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi
APT_UPDATED=0
need() { # need PATH_OR_COMMAND DEBIAN_PACKAGE
    if [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; then return 0; fi
    [ "$IS_ROOT" = 1 ] || die "$1 not found; install the Debian package $2"
    log "installing $2"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >"$WORK/apt.log" 2>&1; then
        [ "$APT_UPDATED" = 1 ] || { apt-get update -q >>"$WORK/apt.log" 2>&1 || true; APT_UPDATED=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >>"$WORK/apt.log" 2>&1 \
            || die "apt-get install $2 failed, see $WORK/apt.log"
    fi
    [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 || die "$1 still not found after installing $2"
}
need python3 python3
need mariadbd mariadb-server
need mariadb mariadb-client
need zstd zstd
need /usr/bin/time time
if [ "$SKIP_PEERS" != 1 ]; then
    need mydumper mydumper
    need myloader mydumper
    need mariadb-dump mariadb-client
fi

if [ -n "${BENCH_ARCA_BIN:-}" ]; then
    ARCA=$BENCH_ARCA_BIN
else
    need cargo cargo
    log "cargo build --release -p arca (no-op when up to date)"
    (cd "$ROOT" && cargo build --release -p arca) >"$WORK/cargo-build.log" 2>&1 \
        || { tail -30 "$WORK/cargo-build.log" >&2; die "cargo build --release -p arca failed (log: $WORK/cargo-build.log)"; }
    ARCA=$ROOT/target/release/arca
fi
[ -x "$ARCA" ] || die "arca binary $ARCA not found"

# At the peak: the source, one restored copy and its binary log, the dumps,
# the repository and the 512 MiB redo log: about five times the source.
SOURCE_EST=$(( NTABLES * ROWS * 300 + BLOBS * 1100000 + NOPK_ROWS * 150 ))
AVAIL=$(( $(df -Pk "$WORK" | awk 'NR==2{print $4}') * 1024 ))
if [ "$AVAIL" -lt $(( 5 * SOURCE_EST + (600 << 20) )) ]; then
    log "warning: $((AVAIL >> 20)) MiB free under $WORK; this run may need $(( (5 * SOURCE_EST + (600 << 20)) >> 20 )) MiB"
fi

if [ "$IS_ROOT" = 1 ]; then
    id mysql >/dev/null 2>&1 || die "no mysql user (the mariadb-server package creates it)"
    p=$WORK
    while [ "$p" != / ]; do
        runuser -u mysql -- test -x "$p" || die "$p is not traversable by the mysql user; set BENCH_WORK to a directory it can reach (e.g. /tmp/arca-bench)"
        p=$(dirname "$p")
    done
fi

# ---------------------------------------------------------------- server and cleanup
sqlr() { mariadb --no-defaults --socket="$SOCK" -uroot --batch --skip-column-names "$@"; }
SRV_PID=   # the mariadbd started here, should its pid file be gone
server_pid() { cat "$SRV/pid" 2>/dev/null || echo "$SRV_PID"; }
stop_server() {
    local pid; pid=$(server_pid)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--datadir=$SRV/data" || return 0   # not ours
    mariadb-admin --no-defaults --socket="$SOCK" -uroot shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_server
    if [ "$KEEP" != 1 ] && [ -d "$RUN" ]; then
        rm -rf "${SRV:?}" "$RUN/repo-arca" "$RUN"/dump-*
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_server   # a previous run killed before its trap ran may have left its server
rm -rf "$RUN"
mkdir -p "$LOGS" "$SRV/tmp"
[ "$IS_ROOT" = 1 ] && chown -R mysql: "$SRV"
: >"$RES"
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
USER_ARG=(); [ "$IS_ROOT" = 1 ] && USER_ARG=(--user=mysql)
mariadb-install-db --no-defaults "${USER_ARG[@]}" --datadir="$SRV/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$LOGS/install-db.log" 2>&1 || { tail -20 "$LOGS/install-db.log" >&2; die "mariadb-install-db failed"; }
mariadbd --no-defaults "${USER_ARG[@]}" --datadir="$SRV/data" --socket="$SOCK" --port="$PORT" \
    --bind-address=127.0.0.1 --pid-file="$SRV/pid" --log-error="$SRV/error.log" --tmpdir="$SRV/tmp" \
    --log-bin="$SRV/binlog" --server-id=1 --binlog-format=ROW \
    --innodb-buffer-pool-size="$BUFFER_POOL" --innodb-log-file-size=512M \
    --max-allowed-packet=64M --local-infile=1 --max-connections=100 >/dev/null 2>&1 &
SRV_PID=$!
for _ in $(seq 600); do
    mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1 && break
    sleep 0.1
done
mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1 \
    || { tail -20 "$SRV/error.log" >&2; die "mariadbd did not start (log: $SRV/error.log)"; }
SERVER_VERSION=$(sqlr -e 'SELECT @@version')
log "MariaDB $SERVER_VERSION on 127.0.0.1:$PORT ($SRV)"
sqlr -e "SET sql_log_bin = 0; CREATE USER '$USER_'@'127.0.0.1' IDENTIFIED BY '$PW';
         GRANT ALL PRIVILEGES ON *.* TO '$USER_'@'127.0.0.1' WITH GRANT OPTION;"
CNF=$RUN/client.cnf   # for mariadb-dump and mariadb over TCP, as the peers connect
printf '[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nport=%s\nprotocol=tcp\nmax-allowed-packet=64M\n' \
    "$USER_" "$PW" "$PORT" >"$CNF"
chmod 600 "$CNF"
URL="mysql://$USER_:$PW@127.0.0.1:$PORT"
MY=(-h 127.0.0.1 -P "$PORT" -u "$USER_" -p "$PW")   # mydumper and myloader
HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------- data set
# sysbench's templates: c is ten groups of 11 digits, pad five, joined by '-'.
# RAND() without an argument draws from the session's generator, which
# `seed NAME` sets: the data are the same in every run. (RAND(N) would not
# do: each call site starts its own generator, and call sites with nearby
# seeds give nearly the same numbers.)
groups() { # groups N: N groups of 11 random digits joined by '-'
    local out="" j
    for j in $(seq 1 "$1"); do out+="${out:+, }LPAD(FLOOR(RAND() * 100000000000), 11, '0')"; done
    printf "CONCAT_WS('-', %s)" "$out"
}
seed() { # seed NAME: SET statement seeding RAND() from NAME
    local h; h=$(printf '%s' "$1" | sha256sum)
    printf 'SET SESSION rand_seed1 = %d, rand_seed2 = %d;' "$((16#${h:0:7}))" "$((16#${h:8:7}))"
}
gen_table() { # gen_table I
    local i=$1
    sqlr "$DB" -e "SET sql_log_bin = 0; $(seed "sbtest$i")
        CREATE TABLE sbtest$i (id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT 0,
            c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id)) ENGINE=InnoDB;
        INSERT INTO sbtest$i (id, k, c, pad)
            SELECT seq, 1 + FLOOR(RAND() * $ROWS), $(groups 10), $(groups 5) FROM seq_1_to_$ROWS;
        ALTER TABLE sbtest$i ADD KEY k_$i (k);"
}
log "generating $NTABLES x $ROWS rows, $BLOBS blobs of 1 MiB, $NOPK_ROWS rows without a primary key"
t0=$(date +%s)
sqlr -e "CREATE DATABASE $DB"
pids=()
for i in $(seq 1 "$NTABLES"); do
    gen_table "$i" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$THREADS" ]; then wait "${pids[0]}" || die "generating a table failed"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || die "generating a table failed"; done
{
    echo "SET sql_log_bin = 0; SET SESSION group_concat_max_len = 4194304; $(seed nopk)"
    echo "CREATE TABLE blobs (id INT NOT NULL PRIMARY KEY, b LONGBLOB NOT NULL) ENGINE=InnoDB;"
    for j in $(seq 1 "$BLOBS"); do
        echo "INSERT INTO blobs SELECT $j, GROUP_CONCAT(RANDOM_BYTES(1024) SEPARATOR '') FROM seq_1_to_1024;"
    done
    echo "CREATE TABLE nopk (a INT NOT NULL, b CHAR(60) NOT NULL, c INT NOT NULL, KEY a (a)) ENGINE=InnoDB;"
    echo "INSERT INTO nopk SELECT FLOOR(RAND() * $NOPK_ROWS), $(groups 5), seq FROM seq_1_to_$NOPK_ROWS;"
} | sqlr "$DB" || die "generating blobs and nopk failed"
put gen_seconds "$(( $(date +%s) - t0 ))"
log "generated in $(( $(date +%s) - t0 )) s"

# ---------------------------------------------------------------- helpers
table_list() { # table_list DB: `db`.`t`, … of the bench's tables
    local t out=""
    for t in $TABLES; do out+="${out:+, }\`$1\`.\`$t\`"; done
    printf '%s' "$out"
}
checksums() { # checksums DB: "table checksum" lines
    sqlr -e "CHECKSUM TABLE $(table_list "$1")" | awk '{ sub(/^[^.]*\./, "", $1); print $1, $2 }'
}
definitions() { # definitions DB: SHOW CREATE TABLE of each table, AUTO_INCREMENT counters aside
    local t
    for t in $TABLES; do
        sqlr "$1" -e "SHOW CREATE TABLE \`$t\`" 2>&1 | sed -E 's/ AUTO_INCREMENT=[0-9]+//'
    done
}
data_bytes() { # data_bytes DB: data + index bytes by information_schema
    sqlr -e "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$1'"
}
server_ticks() { awk '{ print $14 + $15 }' "/proc/$(server_pid)/stat"; }
dusb() { du -sb "$1" 2>/dev/null | cut -f1; }

# flush_server: write the buffer pool's dirty pages out and drop old binary
# logs, so no step pays for the previous one's writes.
flush_server() {
    local saved dirty
    # at the default innodb_io_capacity (200) the page cleaner writes ~130 pages a second
    saved=$(sqlr -e 'SELECT @@innodb_max_dirty_pages_pct, @@innodb_io_capacity, @@innodb_io_capacity_max')
    sqlr -e "SET GLOBAL innodb_io_capacity_max = 100000; SET GLOBAL innodb_io_capacity = 50000;
             SET GLOBAL innodb_max_dirty_pages_pct = 0"
    for _ in $(seq 1200); do
        dirty=$(sqlr -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
        [ "$dirty" -lt 100 ] && break
        sleep 0.1
    done
    read -r pct cap cap_max <<<"$saved"
    sqlr -e "SET GLOBAL innodb_max_dirty_pages_pct = $pct; SET GLOBAL innodb_io_capacity = $cap;
             SET GLOBAL innodb_io_capacity_max = $cap_max"
    sqlr -e "FLUSH BINARY LOGS"
    sqlr -e "PURGE BINARY LOGS TO '$(sqlr -e 'SHOW MASTER STATUS' | cut -f1)'"
}
settle() { flush_server; sync; sleep 1; }

# timed NAME CMD...: runs CMD under /usr/bin/time -v; sets T (wall s), CPU
# (user+sys s), RSS_KB (peak RSS of the largest process) and SCPU (the
# server's CPU s meanwhile). Exits the bench if CMD fails; with TIMED_SOFT=1
# returns 1 instead.
timed() {
    local name=$1; shift
    local t0 t1 s0 s1
    s0=$(server_ticks)
    t0=$(date +%s%N)
    if ! /usr/bin/time -v -o "$LOGS/$name.time" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
        tail -20 "$LOGS/$name.err" >&2
        [ "${TIMED_SOFT:-0}" = 1 ] || die "$name failed: $*"
        log "ERROR: $name failed (log: $LOGS/$name.err)"
        return 1
    fi
    t1=$(date +%s%N)
    s1=$(server_ticks)
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    CPU=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.2f", u+s}' "$LOGS/$name.time")
    RSS_KB=$(awk -F': ' '/Maximum resident set size/{print $2}' "$LOGS/$name.time")
    SCPU=$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}')
    log "$name: ${T} s wall, ${CPU} s CPU, server ${SCPU} s CPU, peak RSS ${RSS_KB} KiB"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# timed_runs KEY CLEAN OUT CMD...: BENCH_RUNS runs of a write-heavy step, each
# after `eval CLEAN` and settle; records under KEY the median wall time, CPU
# and server CPU, the largest peak RSS, and the size of OUT after the last run.
timed_runs() {
    local key=$1 clean=$2 out=$3; shift 3
    local ts=() cs=() ss=() rss=0 k
    for k in $(seq 1 "$RUNS"); do
        eval "$clean"
        settle
        timed "$key.$k" "$@"
        ts+=("$T"); cs+=("$CPU"); ss+=("$SCPU")
        [ "$RSS_KB" -gt "$rss" ] && rss=$RSS_KB
    done
    put "$key.time" "$(median "${ts[@]}")"
    put "$key.runs" "${ts[*]}"
    put "$key.cpu" "$(median "${cs[@]}")"
    put "$key.server_cpu" "$(median "${ss[@]}")"
    put "$key.rss_kb" "$rss"
    put "$key.bytes" "$(dusb "$out")"
    log "$key: median $(median "${ts[@]}") s of ${ts[*]}"
}

put_timed() { # put_timed KEY: record T, CPU, SCPU, RSS_KB under KEY
    put "$1.time" "$T"; put "$1.cpu" "$CPU"; put "$1.server_cpu" "$SCPU"; put "$1.rss_kb" "$RSS_KB"
}

arca_json() { # arca_json FILE FIELD: a field of the JSON object arca printed
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"
}

# ---------------------------------------------------------------- source
log "reading every table once (buffer pool warm-up)"
checksums "$DB" >"$LOGS/source-before.checksums"
put source_bytes "$(data_bytes "$DB")"
put source_rows "$(sqlr -e "SELECT SUM(TABLE_ROWS) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$DB'")"
put loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"

# ---------------------------------------------------------------- Arca backups
REPO=$RUN/repo-arca
ARCA_BACKUP=("$ARCA" backup --repo "$REPO" --source "$URL/$DB" --parallelism "$THREADS" --json)
log "== arca backups: $("$ARCA" --version)"
# shellcheck disable=SC2016  # CLEAN is evaluated later
timed_runs arca.full 'rm -rf "$REPO"; "$ARCA" init --repo "$REPO" $ARCA_INIT_FLAGS >"$LOGS/arca.init.out" 2>&1 || die "arca init failed"' \
    "$REPO" "${ARCA_BACKUP[@]}"
put arca.full.stored_bytes "$(arca_json "$LOGS/arca.full.$RUNS.out" stored_bytes)"
put arca.empty_repo_bytes "$(( $(dusb "$REPO") - $(arca_json "$LOGS/arca.full.$RUNS.out" stored_bytes) ))"

before=$(dusb "$REPO")
settle
timed arca.unchanged "${ARCA_BACKUP[@]}"
put_timed arca.unchanged
put arca.unchanged.added "$(( $(dusb "$REPO") - before ))"
put arca.unchanged.stored_bytes "$(arca_json "$LOGS/arca.unchanged.out" stored_bytes)"

log "updating $UPDATE_PCT% of the rows of each sbtest table"
n_upd=$(( ROWS * UPDATE_PCT / 100 ))
for i in $(seq 1 "$NTABLES"); do
    sqlr "$DB" -e "$(seed "update$i") CREATE TEMPORARY TABLE ids (id INT PRIMARY KEY)
            SELECT seq AS id FROM seq_1_to_$ROWS ORDER BY RAND() LIMIT $n_upd;
        UPDATE sbtest$i t JOIN ids USING (id) SET t.c = $(groups 10);"
done
put updated_rows "$(( n_upd * NTABLES ))"

before=$(dusb "$REPO")
settle
timed arca.incremental "${ARCA_BACKUP[@]}"
put_timed arca.incremental
put arca.incremental.added "$(( $(dusb "$REPO") - before ))"
put arca.incremental.stored_bytes "$(arca_json "$LOGS/arca.incremental.out" stored_bytes)"
put arca.repo_bytes "$(dusb "$REPO")"
put arca.version "$("$ARCA" --version | head -1)"

checksums "$DB" >"$LOGS/source.checksums"
definitions "$DB" >"$LOGS/source.definitions"

# ---------------------------------------------------------------- peers' dumps
if [ "$SKIP_PEERS" != 1 ]; then
    log "== dumps: $(mydumper --version | head -1); $(mariadb-dump --version)"
    D_GZ=$RUN/dump-mydumper-gz
    D_PLAIN=$RUN/dump-mydumper
    D_SQL=$RUN/dump-mariadb.sql.zst
    timed_runs mydumper_gz.dump 'rm -rf "$D_GZ"' "$D_GZ" \
        mydumper "${MY[@]}" -B "$DB" -t "$THREADS" -c -o "$D_GZ"
    timed_runs mydumper.dump 'rm -rf "$D_PLAIN"' "$D_PLAIN" \
        mydumper "${MY[@]}" -B "$DB" -t "$THREADS" -o "$D_PLAIN"
    rm -rf "$D_PLAIN"   # timed only: myloader restores the compressed dump, which is what one keeps
    timed_runs mariadb_dump.dump 'rm -f "$D_SQL"' "$D_SQL" \
        bash -o pipefail -c 'mariadb-dump --defaults-extra-file="$1" --single-transaction --quick "$2" | zstd -1 -T"$3" -q >"$4"' \
        _ "$CNF" "$DB" "$THREADS" "$D_SQL"
    put mydumper.version "$(mydumper --version | awk '{print $2}' | tr -d ,)"
    put mariadb_dump.version "$(mariadb-dump --version | awk '{print $3, $5}' | tr -d ,)"
fi

# ---------------------------------------------------------------- restores
FAILED=0
declare -A TS_ CPU_ SCPU_ RSS_ BAD_
restore_once() { # restore_once TOOL K
    local tool=$1 k=$2 target=bench_$1
    sqlr -e "DROP DATABASE IF EXISTS $target"
    case $tool in
        mydumper_gz|mariadb_dump) sqlr -e "CREATE DATABASE $target" ;;
    esac
    settle
    case $tool in
        arca) TIMED_SOFT=1 timed "arca.restore.$k" "$ARCA" restore latest --repo "$REPO" --to "$URL" \
                  --rename "$DB:$target" --parallelism "$THREADS" --json || return 1 ;;
        mydumper_gz) TIMED_SOFT=1 timed "mydumper_gz.restore.$k" myloader "${MY[@]}" -t "$THREADS" -e \
                  -d "$D_GZ" -B "$target" || return 1 ;;
        mariadb_dump) TIMED_SOFT=1 timed "mariadb_dump.restore.$k" bash -o pipefail -c \
                  'zstd -dc "$1" | mariadb --defaults-extra-file="$2" "$3"' _ "$D_SQL" "$CNF" "$target" || return 1 ;;
    esac
    TS_[$tool]+=" $T"; CPU_[$tool]+=" $CPU"; SCPU_[$tool]+=" $SCPU"
    [ "$RSS_KB" -gt "${RSS_[$tool]:-0}" ] && RSS_[$tool]=$RSS_KB
    # the restored tables against the source
    checksums "$target" >"$LOGS/$tool.restore.$k.checksums"
    definitions "$target" >"$LOGS/$tool.restore.$k.definitions"
    if ! cmp -s "$LOGS/source.checksums" "$LOGS/$tool.restore.$k.checksums"; then
        BAD_[$tool]="NO (CHECKSUM TABLE differs in run $k)"
        log "ERROR: $tool: restored tables differ from the source: $(diff "$LOGS/source.checksums" "$LOGS/$tool.restore.$k.checksums" | grep '^>' | head -3 | tr '\n' ' ')"
    elif ! cmp -s "$LOGS/source.definitions" "$LOGS/$tool.restore.$k.definitions"; then
        BAD_[$tool]="NO (SHOW CREATE TABLE differs in run $k)"
        log "ERROR: $tool: restored table definitions differ: $(diff "$LOGS/source.definitions" "$LOGS/$tool.restore.$k.definitions" | grep '^[<>]' | head -4 | tr '\n' ' ')"
    fi
    [ "$k" = "$RUNS" ] && put "$tool.restore.data_bytes" "$(data_bytes "$target")"
    sqlr -e "DROP DATABASE $target"
    return 0
}
TOOLS="arca"
[ "$SKIP_PEERS" != 1 ] && TOOLS="arca mydumper_gz mariadb_dump"
# The tools take turns, so load from elsewhere on the machine falls on all alike.
log "== restores ($RUNS rounds, taking turns)"
declare -A RFAILED
for k in $(seq 1 "$RUNS"); do
    for tool in $TOOLS; do
        [ -n "${RFAILED[$tool]:-}" ] && continue
        restore_once "$tool" "$k" || RFAILED[$tool]=1
    done
done
for tool in $TOOLS; do
    if [ -n "${RFAILED[$tool]:-}" ]; then
        put "$tool.restore.identical" "FAILED (restore exited non-zero)"; FAILED=1
        continue
    fi
    # shellcheck disable=SC2086  # lists of numbers
    {
        put "$tool.restore.time" "$(median ${TS_[$tool]})"
        put "$tool.restore.runs" "${TS_[$tool]# }"
        put "$tool.restore.cpu" "$(median ${CPU_[$tool]})"
        put "$tool.restore.server_cpu" "$(median ${SCPU_[$tool]})"
    }
    put "$tool.restore.rss_kb" "${RSS_[$tool]}"
    if [ -n "${BAD_[$tool]:-}" ]; then
        put "$tool.restore.identical" "${BAD_[$tool]}"; FAILED=1
    else
        put "$tool.restore.identical" yes
    fi
done

# ---------------------------------------------------------------- report
put loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
put rows "$ROWS"
put tables "$NTABLES"
put blobs "$BLOBS"
put nopk_rows "$NOPK_ROWS"
put update_pct "$UPDATE_PCT"
put threads "$THREADS"
put runs "$RUNS"
put buffer_pool "$BUFFER_POOL"
put arca_init_flags "$ARCA_INIT_FLAGS"
put server_version "$SERVER_VERSION"
put cpus "$(nproc)"
put cpu_model "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
put mem_gib "$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)"
if [ -n "${BENCH_ARCA_BIN:-}" ]; then
    put git_rev "${BENCH_ARCA_REV:-unknown (BENCH_ARCA_BIN)}"
else
    put git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
fi
put date "$(date -u +%Y-%m-%d)"

python3 - "$RES" "$WORK/results-mysql.md" "$WORK/results-mysql.json" <<'PY'
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
    if kind == "pct":
        return "%.1f%%" % (100 * v)
    return str(v)


TOOLS = [("arca", "Arca"), ("mydumper_gz", "mydumper -c (gzip) / myloader"),
         ("mydumper", "mydumper, uncompressed (not restored)"), ("mariadb_dump", "mariadb-dump \\| zstd -1 / mariadb")]
TOOLS = [t for t in TOOLS if t[0] + ".restore.time" in res or t[0] + ".full.time" in res
         or t[0] + ".dump.time" in res or t[0] + ".restore.identical" in res]
runs = res["runs"]
full = num("arca.full.bytes")
full_added = full - num("arca.empty_repo_bytes") if full is not None else None
inc = num("arca.incremental.added")
rows = [  # (step, metric, {tool: key}, kind)
    ("backup (median of %s)" % runs, "time", {"arca": "arca.full.time", "*": "{t}.dump.time"}, "s"),
    ("", "CPU (user+sys)", {"arca": "arca.full.cpu", "*": "{t}.dump.cpu"}, "s"),
    ("", "server CPU", {"arca": "arca.full.server_cpu", "*": "{t}.dump.server_cpu"}, "s"),
    ("", "peak RSS", {"arca": "arca.full.rss_kb", "*": "{t}.dump.rss_kb"}, "rss"),
    ("", "output (du)", {"arca": "arca.full.bytes", "*": "{t}.dump.bytes"}, "bytes"),
    ("unchanged backup", "time", {"arca": "arca.unchanged.time"}, "s"),
    ("", "bytes added (du)", {"arca": "arca.unchanged.added"}, "bytes"),
    ("incremental backup (%s%% of sbtest rows updated)" % res["update_pct"], "time",
     {"arca": "arca.incremental.time"}, "s"),
    ("", "peak RSS", {"arca": "arca.incremental.rss_kb"}, "rss"),
    ("", "bytes added (du)", {"arca": "arca.incremental.added"}, "bytes"),
    ("", "of the full backup's bytes", {"arca": "=inc_ratio"}, "pct"),
    ("restore (median of %s)" % runs, "time", {"*": "{t}.restore.time"}, "s"),
    ("", "all runs", {"*": "{t}.restore.runs"}, "runs"),
    ("", "CPU (user+sys)", {"*": "{t}.restore.cpu"}, "s"),
    ("", "server CPU", {"*": "{t}.restore.server_cpu"}, "s"),
    ("", "peak RSS", {"*": "{t}.restore.rss_kb"}, "rss"),
    ("", "identical (CHECKSUM TABLE, SHOW CREATE TABLE)", {"*": "{t}.restore.identical"}, "str"),
    ("repository", "after the 3 backups (du)", {"arca": "arca.repo_bytes"}, "bytes"),
]
derived = {"=inc_ratio": inc / full_added if inc is not None and full_added else None}


def cell(tool, keys, kind):
    k = keys.get(tool, keys.get("*"))
    if k is None:
        return "", None
    if k in derived:
        v = derived[k]
        return fmt(v, kind), v
    k = k.format(t=tool)
    if kind == "runs":
        v = res.get(k)
        return (", ".join("%.2f" % float(x) for x in v.split()) + " s" if v else "-"), None
    if kind == "str":
        v = res.get(k)
        return (v if v else "-"), None
    v = num(k)
    return fmt(v, kind), v


out = []
src = num("source_bytes")
out.append("### %s tables of %s rows, %s blobs of 1 MiB, %s rows without a primary key (%s in InnoDB), %s" % (
    res["tables"], format(int(num("rows")), ","), res["blobs"], format(int(num("nopk_rows")), ","), fbytes(src),
    res["date"]))
out.append("")
out.append("Machine: %s cores (%s), %s GiB RAM, shared with other work; local disk; MariaDB %s (binary log on, ROW; "
           "buffer pool %s), on the same machine; git %s." % (
               res["cpus"], res["cpu_model"], res["mem_gib"], res["server_version"], res["buffer_pool"], res["git_rev"]))
vers = [res.get("arca.version", "arca") + " (--parallelism %s%s)" % (
    res["threads"], ", init flags `%s`" % res["arca_init_flags"] if res.get("arca_init_flags") else "")]
if "mydumper.version" in res:
    vers.append("mydumper/myloader %s (-t %s; myloader -e)" % (res["mydumper.version"], res["threads"]))
    vers.append("mariadb-dump %s (--single-transaction --quick), zstd -1 -T%s" % (
        res["mariadb_dump.version"], res["threads"]))
out.append("Tools: " + ", ".join(vers) + ".")
out.append("1-minute load average %s at the start of the measurements, %s at the end." % (
    res["loadavg_start"], res["loadavg_end"]))
out.append("")
out.append("| step | metric | " + " | ".join(n for _, n in TOOLS) + " |")
out.append("|---|---|" + "---:|" * len(TOOLS))
for step, metric, keys, kind in rows:
    cells = [cell(t, keys, kind)[0] or "" for t, _ in TOOLS]
    if not any(cells):
        continue
    out.append("| %s | %s | %s |" % (step, metric, " | ".join(c or "" for c in cells)))

# the targets
def best(keys):
    vals = [(num(k), k.split(".")[0]) for k in keys if num(k) is not None]
    return min(vals) if vals else (None, None)


tgt = []
bt, bn = best(["mydumper_gz.dump.time", "mariadb_dump.dump.time"])
at = num("arca.full.time")
if bt is not None and at is not None:
    tgt.append(("backup no slower than the faster compressing dumper",
                "%.2f s vs %.2f s (%s): %.2f×" % (at, bt, dict(TOOLS)[bn].split(" / ")[0], at / bt), at <= bt))
lt, ln = best(["mydumper_gz.restore.time", "mydumper.restore.time"])
ar = num("arca.restore.time")
if lt is not None and ar is not None:
    tgt.append(("restore at most half of myloader's time",
                "%.2f s vs %.2f s (myloader from the %s dump): %.2f×" % (
                    ar, lt, "gzip" if ln == "mydumper_gz" else "uncompressed", ar / lt), ar <= lt / 2))
zb = num("mariadb_dump.dump.bytes")
if zb is not None and full is not None:
    tgt.append(("repository no larger than `mariadb-dump \\| zstd -1`'s output",
                "%s vs %s: %.2f×" % (fbytes(full), fbytes(zb), full / zb), full <= zb))
r = derived["=inc_ratio"]
if r is not None:
    tgt.append(("incremental after %s%% row updates at most 10%% of a full" % res["update_pct"],
                "%s of %s: %.1f%%" % (fbytes(inc), fbytes(full_added), 100 * r), r <= 0.10))
rss = [num(k) for k in ("arca.full.rss_kb", "arca.incremental.rss_kb", "arca.restore.rss_kb") if num(k) is not None]
if rss:
    tgt.append(("peak RSS under 256 MiB", "backup %s, incremental %s, restore %s" % (
        fmt(num("arca.full.rss_kb"), "rss"), fmt(num("arca.incremental.rss_kb"), "rss"),
        fmt(num("arca.restore.rss_kb"), "rss")), max(rss) * 1024 < 256 * MiB))
if tgt:
    out.append("")
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    for t, m, ok in tgt:
        out.append("| %s | %s | %s |" % (t, m, "met" if ok else "**not met**"))
out.append("")
out.append("- Output: Arca's is its repository after the first backup (%s of it the empty repository); "
           "the peers' their dump directory or file." % fbytes(num("arca.empty_repo_bytes")))
out.append("- Server CPU: what mariadbd used during the step, from /proc; CPU: the tool's own processes.")
out.append("- Source: %s bytes of data and indexes by information_schema; %s rows updated before the incremental." % (
    format(int(src), ","), format(int(num("updated_rows")), ",")))
text = "\n".join(out) + "\n"
print(text)
open(sys.argv[2], "w").write(text)
json.dump({"raw": res, "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in tgt]},
          open(sys.argv[3], "w"), indent=1)
PY
log "wrote $WORK/results-mysql.md"

if [ "$FAILED" != 0 ]; then
    die "a restore failed or a restored table differs from the source"
fi
