#!/usr/bin/env bash
# The daemon's HTTP API under load: `arca serve` with a catalog of 10,000
# backups, 100,000 events and 10,000 jobs, 50 concurrent clients (wrk).
#
#   bench/serve.sh                                    # 10,000 backups (generated once, then cached)
#   BENCH_BACKUPS=500 BENCH_DURATION=5 bench/serve.sh # quick run
#
# One run:
#   1. a small SQLite database (`app`, one table of 200 rows) and a local
#      repository holding BENCH_BACKUPS real backups of it, made by
#      `arca backup --repo R --source sqlite://DB` in rounds of
#      BENCH_ROUND backups, BENCH_GEN_PARALLEL at a time; one row of the
#      database changes before every round. The repository and the database
#      are cached in $BENCH_WORK/serve-cache-N (N = BENCH_BACKUPS) and reused
#      by later runs (BENCH_FRESH=1 makes them again); the generation's time
#      is kept with them and reported.
#      Then `arca check --read-data` of the new repository.
#      Every `arca backup` reads every manifest of its repository (twice:
#      the SQLite engine's delta base and the new snapshot's parent), so the
#      N-th backup costs O(N) and making N of them O(N^2): here about 0.5 ms
#      of CPU per backup already in the repository, hours for 10,000.
#      BENCH_GEN_ARCA_BIN names a build that makes them faster (e.g. one
#      that reads local files without OpenDAL; the report names it).
#   2. the catalog: the daemon is started once on a fresh catalog (it creates
#      its tables) and stopped with SIGTERM; then BENCH_EVENTS events and
#      BENCH_JOBS finished jobs are inserted into its `events` and `jobs`
#      tables (python3's sqlite3): kinds and states in the proportions a
#      daemon with hourly plans writes them (schedule_fired, job_succeeded,
#      retention_queued, ..., a few job_failed, five config_rejected), over
#      three sources (app, billing, crm) and the last 90 days. The `backups`
#      table is the daemon's own copy of the repository, made by its start
#      scan.
#   3. the daemon again, on that catalog: the time until it prints
#      `listening on` (its start scan lists every backup), then its VmRSS and
#      VmHWM (/proc/PID/status) after BENCH_SETTLE seconds idle, before any load.
#   4. for each endpoint: every answer is checked once with curl (200, a full
#      page), then `wrk -t BENCH_WRK_THREADS -c BENCH_CONNECTIONS
#      -d BENCH_DURATION --latency` after a BENCH_WARMUP-second warm-up,
#      with the viewer token in `Authorization: Bearer`. Percentiles come from
#      wrk's own histogram (a Lua `done` hook prints them); the daemon's CPU
#      per request from /proc. wrk runs on the same machine as the daemon and
#      takes part of its cores: its CPU is reported too.
#   5. VmRSS/VmHWM after the load (and after BENCH_AFTER_SETTLE seconds idle again),
#      then SIGTERM: the time until the process has exited (target: 10 s).
#
# Endpoints (all GET, limit=50): backups; backups?source=app; backups with
# source=app and a from/to window holding the middle third of the backups;
# the second page (the first page's `next` cursor); events; events?source=app
# &kind=job_succeeded; jobs. Two more, outside the issue's list, show how a
# filter scales: the backups page at the middle of the list (a cursor
# BENCH_BACKUPS/2 rows down) and events of a kind that is rare
# (kind=config_rejected: five of the events, all old).
#
# Environment:
#   BENCH_BACKUPS=10000        real backups in the repository
#   BENCH_EVENTS=100000        events inserted into the catalog
#   BENCH_JOBS=10000           finished jobs inserted into the catalog
#   BENCH_GEN_PARALLEL=N       backups running at once while generating (default: CPU cores)
#   BENCH_ROUND=20             backups between two changes of the database
#   BENCH_GEN_NICE=0           niceness of the generating backups (19: only idle CPU)
#   BENCH_GEN_ARCA_BIN=PATH    another arca binary to init the repository and make the backups
#                              (the measured one still checks the result and serves it)
#   BENCH_CONNECTIONS=50       wrk's concurrent connections (clients)
#   BENCH_WRK_THREADS=2        wrk's threads
#   BENCH_DURATION=20          seconds of load per endpoint
#   BENCH_WARMUP=3             seconds of unrecorded load before each
#   BENCH_SETTLE=3             seconds idle before the first RSS reading
#   BENCH_AFTER_SETTLE=15      seconds idle after the load before the last (tokio ends
#                              blocking threads idle for 10 s)
#   BENCH_FRESH=1              generate the repository again even if cached
#   ARCA_BIN=PATH              use this arca binary instead of building target/release/arca
#                              (BENCH_ARCA_BIN is read too)
#   BENCH_ARCA_REV=REV         the git revision that binary was built from (for the report)
#   BENCH_KEEP=1               keep the run directory (catalog, config, logs)
#   BENCH_WORK=DIR             work directory (default bench/work, gitignored)
#
# Output: a Markdown table on stdout, also written to $BENCH_WORK/results-serve.md
# (raw figures in results-serve.json); wrk's output and the daemon's logs in
# $BENCH_WORK/run-serve/logs. Exits non-zero if an endpoint answers other
# than 200 or with a short page, or the daemon does not exit on SIGTERM
# (after printing the table); a target not met is reported, not an error.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
N_BACKUPS=${BENCH_BACKUPS:-10000}
N_EVENTS=${BENCH_EVENTS:-100000}
N_JOBS=${BENCH_JOBS:-10000}
GEN_PAR=${BENCH_GEN_PARALLEL:-$(nproc)}
ROUND=${BENCH_ROUND:-20}
GEN_NICE=${BENCH_GEN_NICE:-0}
CONNS=${BENCH_CONNECTIONS:-50}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-3}
SETTLE=${BENCH_SETTLE:-3}
AFTER_SETTLE=${BENCH_AFTER_SETTLE:-15}
FRESH=${BENCH_FRESH:-0}
KEEP=${BENCH_KEEP:-0}
ARCA_BIN=${ARCA_BIN:-${BENCH_ARCA_BIN:-}}

RUN=$WORK/run-serve
LOGS=$RUN/logs
RES=$RUN/results.env   # key=value lines, rendered into the table at the end
CACHE=$WORK/serve-cache-$N_BACKUPS

log() { printf '[serve-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
mkdir -p "$WORK"
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
APT_UPDATED=0
need() { # need COMMAND DEBIAN_PACKAGE
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
need sqlite3 sqlite3
need curl curl
need wrk wrk
need /usr/bin/time time

if [ -n "$ARCA_BIN" ]; then
    ARCA=$ARCA_BIN
else
    need cargo cargo
    log "cargo build --release -p arca (no-op when up to date)"
    (cd "$ROOT" && cargo build --release -p arca) >"$WORK/cargo-build.log" 2>&1 \
        || { tail -30 "$WORK/cargo-build.log" >&2; die "cargo build --release -p arca failed (log: $WORK/cargo-build.log)"; }
    ARCA=$ROOT/target/release/arca
fi
[ -x "$ARCA" ] || die "arca binary $ARCA not found"
ARCA=$(cd "$(dirname "$ARCA")" && pwd)/$(basename "$ARCA")
GEN_ARCA=${BENCH_GEN_ARCA_BIN:-$ARCA}   # makes the repository; $ARCA checks it and is measured
[ -x "$GEN_ARCA" ] || die "arca binary $GEN_ARCA not found"

# ---------------------------------------------------------------- cleanup
DAEMON_PID=
stop_daemon() { # SIGTERM to the daemon started here, then SIGKILL after 30 s
    local pid=$DAEMON_PID
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    DAEMON_PID=
}
cleanup() {
    local rc=$?
    stop_daemon
    if [ "$KEEP" != 1 ] && [ -d "$RUN" ]; then
        rm -rf "${RUN:?}/state"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$RUN"
mkdir -p "$LOGS" "$RUN/state"
: >"$RES"
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
put loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"

# ---------------------------------------------------------------- the repository
DB=$CACHE/app.db
REPO=$CACHE/repo
URL="sqlite://$DB"
backups_in_repo() { find "$REPO/snapshots" -type f 2>/dev/null | wc -l; }

if [ "$FRESH" = 1 ] || [ ! -f "$CACHE/complete.env" ]; then
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    python3 - "$DB" <<'PY'
import random, sqlite3, sys
random.seed(42)
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount INTEGER NOT NULL, note TEXT)")
c.executemany("INSERT INTO orders (customer, amount, note) VALUES (?, ?, ?)",
              [("customer-%04d" % random.randrange(10000), random.randrange(1, 100000), "n" * random.randrange(10, 60))
               for _ in range(200)])
c.commit()
PY
    "$GEN_ARCA" init --repo "$REPO" >"$LOGS/init.out" 2>&1 || { cat "$LOGS/init.out" >&2; die "arca init failed"; }
    log "making $N_BACKUPS backups of $(du -b "$DB" | cut -f1) bytes, $GEN_PAR at a time, a row changed every $ROUND"
    : >"$CACHE/ids"
    t0=$(date +%s.%N)
    tlast=$t0
    done_=0
    next_report=$(( N_BACKUPS / 10 > 0 ? N_BACKUPS / 10 : 1 ))
    declare -a DECILES=()
    while [ "$done_" -lt "$N_BACKUPS" ]; do
        n=$(( N_BACKUPS - done_ < ROUND ? N_BACKUPS - done_ : ROUND ))
        sqlite3 "$DB" ".timeout 10000" \
            "UPDATE orders SET amount = amount + 1, note = 'round $done_' WHERE id = 1 + ($done_ / $ROUND) % 200;"
        # xargs runs the n backups, GEN_PAR at a time; a failed one is retried below
        seq "$n" | xargs -P "$GEN_PAR" -I{} nice -n "$GEN_NICE" "$GEN_ARCA" backup --repo "$REPO" --source "$URL" \
            >>"$CACHE/ids" 2>>"$LOGS/gen.err" || true
        have=$(wc -l <"$CACHE/ids")
        tries=0
        while [ "$have" -lt $(( done_ + n )) ]; do
            tries=$(( tries + 1 ))
            [ "$tries" -le 3 ] || die "backups keep failing (log: $LOGS/gen.err): $(tail -3 "$LOGS/gen.err")"
            nice -n "$GEN_NICE" "$GEN_ARCA" backup --repo "$REPO" --source "$URL" >>"$CACHE/ids" 2>>"$LOGS/gen.err" || true
            have=$(wc -l <"$CACHE/ids")
        done
        done_=$have
        if [ "$done_" -ge "$next_report" ] || [ "$done_" -ge "$N_BACKUPS" ]; then
            now=$(date +%s.%N)
            DECILES+=("$(python3 -c "print('%.1f' % ($now - $tlast))")")
            log "$done_ backups, $(python3 -c "print('%.0f' % ($now - $t0))") s; the last $(( N_BACKUPS / 10 > 0 ? N_BACKUPS / 10 : 1 )) took ${DECILES[-1]} s"
            tlast=$now
            next_report=$(( next_report + (N_BACKUPS / 10 > 0 ? N_BACKUPS / 10 : 1) ))
        fi
    done
    gen_s=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))")
    log "arca check --read-data of the new repository"
    /usr/bin/time -f '%e' -o "$LOGS/check.time" "$ARCA" check --repo "$REPO" --read-data >"$LOGS/check.out" 2>&1 \
        || { tail -5 "$LOGS/check.out" >&2; die "arca check of the new repository failed (log: $LOGS/check.out)"; }
    log "$(tail -1 "$LOGS/check.out") ($(cat "$LOGS/check.time") s)"
    [ "$(backups_in_repo)" -eq "$N_BACKUPS" ] || die "the repository holds $(backups_in_repo) backups, not $N_BACKUPS"
    {
        echo "gen_seconds=$gen_s"
        echo "gen_deciles=${DECILES[*]}"
        echo "gen_parallel=$GEN_PAR"
        echo "gen_round=$ROUND"
        echo "gen_nice=$GEN_NICE"
        echo "gen_check=$(tail -1 "$LOGS/check.out")"
        echo "gen_date=$(date -u +%Y-%m-%d)"
        echo "gen_arca=$("$GEN_ARCA" --version | head -1)"
        echo "gen_arca_bin=$([ "$GEN_ARCA" = "$ARCA" ] && echo same || echo "$GEN_ARCA")"
        echo "gen_failures=$(grep -ci error "$LOGS/gen.err" || true)"
    } >"$CACHE/complete.env"
    put gen_reused no
    log "made $N_BACKUPS backups in $gen_s s"
else
    [ "$(backups_in_repo)" -eq "$N_BACKUPS" ] || die "$CACHE holds $(backups_in_repo) backups, not $N_BACKUPS: BENCH_FRESH=1 makes them again"
    put gen_reused yes
    log "reusing the $N_BACKUPS backups in $REPO ($(grep gen_seconds "$CACHE/complete.env"))"
fi
cat "$CACHE/complete.env" >>"$RES"
put repo_bytes "$(du -sb "$REPO" | cut -f1)"
put db_bytes "$(du -b "$DB" | cut -f1)"

# ---------------------------------------------------------------- configuration
STATE=$RUN/state
CATALOG=$STATE/catalog.db
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
for s in billing crm; do   # two more sources, only in the events and jobs
    sqlite3 "$STATE/$s.db" "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('$s');"
done
CFG=$STATE/serve.toml
cat >"$CFG" <<EOF
catalog = "$CATALOG"

[[repository]]
name = "local"
url = "$REPO"

[[source]]
name = "app"
url = "$URL"

[[source]]
name = "billing"
url = "sqlite://$STATE/billing.db"

[[source]]
name = "crm"
url = "sqlite://$STATE/crm.db"

[[token]]
name = "bench"
role = "viewer"
sha256 = "$TOKEN_SHA"
EOF

# start_daemon TAG: starts `arca serve`, waits for `listening on`; sets
# DAEMON_PID, ADDR and START_S (seconds until it listened)
start_daemon() {
    local tag=$1 t0 line
    t0=$(date +%s.%N)
    "$ARCA" serve --config "$CFG" --listen 127.0.0.1:0 >"$LOGS/serve.$tag.out" 2>"$LOGS/serve.$tag.err" &
    DAEMON_PID=$!
    for _ in $(seq 6000); do
        line=$(grep -m1 '^listening on ' "$LOGS/serve.$tag.out" 2>/dev/null || true)
        [ -n "$line" ] && break
        kill -0 "$DAEMON_PID" 2>/dev/null || { tail -20 "$LOGS/serve.$tag.err" >&2; die "arca serve exited at start (log: $LOGS/serve.$tag.err)"; }
        sleep 0.1
    done
    [ -n "$line" ] || die "arca serve did not print 'listening on' in 600 s"
    START_S=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $t0))")
    ADDR=${line#listening on }
}
# sigterm_daemon: SIGTERM, wait; sets STOP_S (seconds until it exited, or
# "no" after 30 s and a SIGKILL) and STOP_RC
sigterm_daemon() {
    local t0 pid=$DAEMON_PID
    t0=$(date +%s.%N)
    kill -TERM "$pid"
    STOP_S=no
    for _ in $(seq 600); do
        if ! kill -0 "$pid" 2>/dev/null; then
            STOP_S=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $t0))")
            break
        fi
        sleep 0.05
    done
    if [ "$STOP_S" = no ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    DAEMON_PID=
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------- the catalog
log "creating the catalog's tables (daemon start and SIGTERM)"
start_daemon schema
sigterm_daemon
[ "$STOP_RC" = 0 ] || die "arca serve exited $STOP_RC after SIGTERM (log: $LOGS/serve.schema.err)"
put first_start_seconds "$START_S"

log "inserting $N_EVENTS events and $N_JOBS jobs"
python3 - "$CATALOG" "$N_EVENTS" "$N_JOBS" <<'PY'
import datetime as dt, json, random, sqlite3, sys

path, n_events, n_jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
span = dt.timedelta(days=90)
start = now - span - dt.timedelta(hours=1)
SOURCES = [("app", 0.5), ("billing", 0.3), ("crm", 0.2)]


def stamp(t):  # the catalog's form: UTC, microseconds, fixed width
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pick(pairs):
    x = rnd.random() * sum(w for _, w in pairs)
    for v, w in pairs:
        x -= w
        if x < 0:
            return v
    return pairs[-1][0]


def job_id(t):
    return "%s-%08x" % (t.strftime("%Y%m%dT%H%M%S"), rnd.getrandbits(32))


def times(n):  # n sorted times over the 90 days, about evenly
    return sorted(start + dt.timedelta(seconds=rnd.random() * span.total_seconds()) for _ in range(n))


c = sqlite3.connect(path)
c.execute("DELETE FROM events")   # the schema run's own few; history is replaced by ours
c.execute("DELETE FROM jobs")

# jobs: mostly scheduled backups, their retention, some checks and restores
jobs = []
for t in times(n_jobs):
    kind = pick([("backup", 0.85), ("forget", 0.10), ("check", 0.03), ("restore", 0.02)])
    src = pick(SOURCES) if kind != "check" else None
    state = pick([("succeeded", 0.96), ("failed", 0.03), ("cancelled", 0.01)])
    size = rnd.randrange(1 << 20, 8 << 30)
    dur = rnd.uniform(1.5, 900.0)
    started = t + dt.timedelta(milliseconds=rnd.randrange(5, 2000))
    finished = started + dt.timedelta(seconds=dur)
    plan = "%s-hourly" % src if src and kind in ("backup", "forget") and rnd.random() < 0.9 else None
    backup = "%064x" % rnd.getrandbits(256) if kind == "backup" and state == "succeeded" else None
    error = None
    if state == "failed":
        error = rnd.choice(["source sqlite://%s: database is locked" % src,
                            "repository local: lock held by another arca (pid 4121) for 300 s",
                            "no space left on device (os error 28)"])
    elif state == "cancelled":
        error = "cancelled by token ops"
    if kind == "backup":
        result = {"repository": "local", "source_url": "sqlite:///var/lib/%s/%s.db" % (src, src), "size": size,
                  "stored_bytes": size // rnd.randrange(20, 400), "duration_ms": int(dur * 1000),
                  "notes": ["incremental against %016x" % rnd.getrandbits(64)]}
    elif kind == "forget":
        result = {"repository": "local", "plan": plan, "kept": rnd.randrange(20, 200),
                  "removed": rnd.randrange(0, 4), "pruned_bytes": rnd.randrange(0, 1 << 28)}
    elif kind == "check":
        result = {"repository": "local", "backups": rnd.randrange(100, 10000), "problems": []}
    else:
        result = {"repository": "local", "to": "/srv/restore/%s-%d" % (src, rnd.randrange(1000)), "files": 1}
    done = size if state == "succeeded" else rnd.randrange(0, size)
    jobs.append((job_id(t), kind, src, plan, state, state, backup, error, stamp(t), stamp(started),
                 stamp(finished), done, size, json.dumps(result)))
c.executemany("INSERT INTO jobs (id, kind, source, plan, state, phase, backup, error, created_at, started_at,"
              " finished_at, bytes_done, bytes_total, result) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", jobs)

# events: what a daemon with hourly plans on three sources writes
SOURCED = [("job_succeeded", 38), ("schedule_fired", 30), ("retention_queued", 12), ("backup_requested", 6),
           ("schedule_skipped", 2), ("job_failed", 1.5), ("job_cancelled", 0.5), ("schedule_missed", 0.5),
           ("restore_requested", 0.5), ("retention_skipped", 0.5), ("job_cancel_requested", 0.5)]
DAEMON = [("daemon_started", 30), ("daemon_stopping", 28), ("daemon_stopped", 28), ("config_reloaded", 12),
          ("jobs_interrupted", 2)]
rare = set(rnd.sample(range(max(1, n_events // 10)), min(5, n_events)))  # config_rejected: five, all old
events = []
for i, t in enumerate(times(n_events)):
    jid = job_id(t)
    if i in rare:
        kind, src = "config_rejected", None
    elif rnd.random() < 0.05:
        kind, src = pick(DAEMON), None
    else:
        kind, src = pick(SOURCED), pick(SOURCES)
    plan = "%s-hourly" % src
    msg = {
        "job_succeeded": lambda: "backup of %s (plan %s) succeeded: backup %08x" % (src, plan, rnd.getrandbits(32)),
        "schedule_fired": lambda: "plan %s: backup queued (due at %s[UTC])" % (plan, t.strftime("%Y-%m-%dT%H:00:00+00:00")),
        "retention_queued": lambda: "plan %s: retention queued" % plan,
        "backup_requested": lambda: "backup of %s requested by token ops" % src,
        "schedule_skipped": lambda: "plan %s: skipped (due): source %s has job %s running" % (plan, src, jid),
        "job_failed": lambda: "backup of %s (plan %s) failed: repository local: lock held by another arca" % (src, plan),
        "job_cancelled": lambda: "backup of %s cancelled: cancelled by token ops" % src,
        "schedule_missed": lambda: "plan %s: 2 run(s) missed while the daemon was down; run_missed = false, so none runs now" % plan,
        "restore_requested": lambda: "restore to /srv/restore/%s requested by token ops" % src,
        "retention_skipped": lambda: "plan %s: retention skipped: job %s holds the source" % (plan, jid),
        "job_cancel_requested": lambda: "cancel of job %s requested by token ops" % jid,
        "daemon_started": lambda: "arca 0.1.0 listening on 127.0.0.1:7070",
        "daemon_stopping": lambda: "stopping: cancelling running jobs",
        "daemon_stopped": lambda: "stopped",
        "config_reloaded": lambda: "configuration reloaded",
        "jobs_interrupted": lambda: "1 job(s) were running when the daemon stopped: marked interrupted",
        "config_rejected": lambda: "the new configuration was refused, the old one stays: plan app-hourly: schedule: unknown word",
    }[kind]()
    job = jid if kind.startswith(("job_", "schedule_fired", "schedule_skipped", "retention_", "backup_req", "restore_req")) else None
    events.append((stamp(t), kind, src, job, msg))
c.executemany("INSERT INTO events (time, kind, source, job, message) VALUES (?,?,?,?,?)", events)
c.commit()
c.close()
PY
put events "$(sqlite3 "$CATALOG" 'SELECT COUNT(*) FROM events')"
put jobs "$(sqlite3 "$CATALOG" 'SELECT COUNT(*) FROM jobs')"
put catalog_bytes "$(du -b "$CATALOG" | cut -f1)"

# ---------------------------------------------------------------- the daemon, idle
log "starting the daemon on the full catalog"
start_daemon bench
log "listening on $ADDR after $START_S s (pid $DAEMON_PID)"
put start_seconds "$START_S"
sleep "$SETTLE"
put idle.rss_kb "$(status_kb "$DAEMON_PID" VmRSS)"
put idle.hwm_kb "$(status_kb "$DAEMON_PID" VmHWM)"
put idle.threads "$(status_kb "$DAEMON_PID" Threads)"
log "idle: VmRSS $(status_kb "$DAEMON_PID" VmRSS) kB, VmHWM $(status_kb "$DAEMON_PID" VmHWM) kB"
n_ok=$(sqlite3 "$CATALOG" "SELECT COUNT(*) FROM backups WHERE source = 'app' AND status = 'ok'")
put catalog_backups "$n_ok"
[ "$n_ok" -eq "$N_BACKUPS" ] || die "the catalog lists $n_ok backups of source app, not $N_BACKUPS (log: $LOGS/serve.bench.err)"

# the from/to window: the middle third of the backups' start times
q_time() { sqlite3 "$CATALOG" "SELECT start_time FROM backups WHERE source = 'app' ORDER BY start_time LIMIT 1 OFFSET $1"; }
FROM=$(q_time $(( N_BACKUPS / 3 )))
TO=$(q_time $(( 2 * N_BACKUPS / 3 )))
MID=$(sqlite3 "$CATALOG" "SELECT start_time || '~' || id FROM backups ORDER BY start_time DESC, id DESC LIMIT 1 OFFSET $(( N_BACKUPS / 2 - 1 ))")
NEWEST=$(sqlite3 "$CATALOG" "SELECT id FROM backups ORDER BY start_time DESC, id DESC LIMIT 1")
BASE="http://$ADDR"
AUTH="Authorization: Bearer $TOKEN"
urlq() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
get() { curl -sS -o "$1" -w '%{http_code}' -H "$AUTH" "$BASE$2"; }

FIRST=$LOGS/page1.json
[ "$(get "$FIRST" "/api/v1/backups?limit=50")" = 200 ] || die "GET /api/v1/backups: $(cat "$FIRST")"
NEXT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["next"] or "")' "$FIRST")
[ -n "$NEXT" ] || die "the first page of backups has no next cursor"

cnt() { sqlite3 "$CATALOG" "SELECT MIN(50, COUNT(*)) FROM $1"; }
N_WINDOW=$(cnt "backups WHERE source = 'app' AND start_time >= '$FROM' AND start_time <= '$TO'")
# name|path|counted against the target (1) or shown for scale (0)|items the page must hold ("-": one object)
ENDPOINTS=(
    "backups|/api/v1/backups?limit=50|1|$(cnt backups)"
    "backups, source=app|/api/v1/backups?source=app&limit=50|1|$(cnt "backups WHERE source = 'app'")"
    "backups, source=app, from/to (middle third)|/api/v1/backups?source=app&from=$(urlq "$FROM")&to=$(urlq "$TO")&limit=50|1|$N_WINDOW"
    "backups, second page (next cursor)|/api/v1/backups?limit=50&cursor=$(urlq "$NEXT")|1|$(( N_BACKUPS - 50 < 50 ? N_BACKUPS - 50 : 50 ))"
    "events|/api/v1/events?limit=50|1|$(cnt events)"
    "events, source=app, kind=job_succeeded|/api/v1/events?source=app&kind=job_succeeded&limit=50|1|$(cnt "events WHERE source = 'app' AND kind = 'job_succeeded'")"
    "jobs|/api/v1/jobs?limit=50|1|$(cnt jobs)"
    "backups, page at row $(( N_BACKUPS / 2 )) (cursor)|/api/v1/backups?limit=50&cursor=$(urlq "$MID")|0|$(( N_BACKUPS - N_BACKUPS / 2 < 50 ? N_BACKUPS - N_BACKUPS / 2 : 50 ))"
    "events, kind=config_rejected (5 old rows)|/api/v1/events?kind=config_rejected&limit=50|0|$(cnt "events WHERE kind = 'config_rejected'")"
    "one backup by its short id (/backups/ID8)|/api/v1/backups/${NEWEST:0:8}|0|-"
)
put from "$FROM"
put to "$TO"
FAILED=0
for i in "${!ENDPOINTS[@]}"; do
    IFS='|' read -r name path _ want <<<"${ENDPOINTS[$i]}"
    code=$(get "$LOGS/check.$i.json" "$path")
    # a listing: its page holds `want` items; one backup (want "-"): its id
    items=$(python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(len(j["items"]) if "items" in j else j.get("id", "")[:8] and "-")' "$LOGS/check.$i.json" 2>/dev/null || echo 0)
    if [ "$code" != 200 ] || [ "$items" != "$want" ] || [ "$want" = 0 ]; then
        log "ERROR: $name: HTTP $code, $items items (want $want): $(head -c 300 "$LOGS/check.$i.json")"
        FAILED=1
    fi
done
[ "$FAILED" = 0 ] || die "an endpoint did not answer a full page"

# ---------------------------------------------------------------- load
LUA=$RUN/report.lua
cat >"$LUA" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
LUA
load_ep() { # load_ep I: wrk on endpoint I, its figures into $RES
    local i=$1 name path counted d0 d1 b0 b1 json wcpu
    IFS='|' read -r name path counted _ <<<"${ENDPOINTS[$i]}"
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" -H "$AUTH" "$BASE$path" >"$LOGS/wrk.$i.warmup" 2>&1 || true
    d0=$(ticks "$DAEMON_PID"); b0=$(busy_ticks)
    /usr/bin/time -f 'WRKCPU %U %S' -o "$LOGS/wrk.$i.time" \
        wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA" -H "$AUTH" "$BASE$path" \
        >"$LOGS/wrk.$i.out" 2>&1 || die "wrk failed on $name: $(tail -5 "$LOGS/wrk.$i.out")"
    d1=$(ticks "$DAEMON_PID"); b1=$(busy_ticks)
    json=$(sed -n 's/^WRKJSON //p' "$LOGS/wrk.$i.out")
    [ -n "$json" ] || die "no summary from wrk on $name: $(tail -5 "$LOGS/wrk.$i.out")"
    wcpu=$(awk '/^WRKCPU/ { print $2 + $3 }' "$LOGS/wrk.$i.time")
    put "ep.$i.name" "$name"
    put "ep.$i.path" "$path"
    put "ep.$i.counted" "$counted"
    put "ep.$i.wrk" "$json"
    put "ep.$i.daemon_cpu" "$(python3 -c "print(($d1 - $d0) / $HZ)")"
    put "ep.$i.wrk_cpu" "$wcpu"
    put "ep.$i.busy_cpu" "$(python3 -c "print(($b1 - $b0) / $HZ)")"
    log "$name: $(python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print("p50 %.2f ms, p99 %.2f ms, %.0f req/s, %d errors" % (j["p50"] / 1e3, j["p99"] / 1e3, j["requests"] / j["duration_us"] * 1e6, j["connect"] + j["read"] + j["write"] + j["status"] + j["timeout"]))' "$json")"
}
memory() { # memory KEY: VmRSS and VmHWM right away, VmRSS again after AFTER_SETTLE s idle
    put "$1.hwm_kb" "$(status_kb "$DAEMON_PID" VmHWM)"
    put "$1.rss_kb" "$(status_kb "$DAEMON_PID" VmRSS)"
    put "$1.threads" "$(status_kb "$DAEMON_PID" Threads)"
    sleep "$AFTER_SETTLE"
    put "$1.idle_rss_kb" "$(status_kb "$DAEMON_PID" VmRSS)"
    put "$1.idle_threads" "$(status_kb "$DAEMON_PID" Threads)"
    log "$1: VmRSS $(status_kb "$DAEMON_PID" VmRSS) kB after $AFTER_SETTLE s idle, VmHWM $(status_kb "$DAEMON_PID" VmHWM) kB"
}
log "load: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s per endpoint (after ${WARMUP} s of warm-up)"
# the issue's listings first, the memory after them, then the ones for scale
for i in "${!ENDPOINTS[@]}"; do
    case ${ENDPOINTS[$i]} in *"|1|"*) load_ep "$i" ;; esac
done
memory after
for i in "${!ENDPOINTS[@]}"; do
    case ${ENDPOINTS[$i]} in *"|0|"*) load_ep "$i" ;; esac
done
memory scale
# one Prometheus scrape and one /api/v1/stats, each alone: /metrics reads
# every manifest of every repository when its 30-second cache of the
# recoverable windows is cold (the first scrape here); stats every backup row
for ep in metrics stats; do
    path=/metrics; [ "$ep" = stats ] && path=/api/v1/stats
    for k in 1 2; do
        d0=$(ticks "$DAEMON_PID")
        t=$(curl -sS -o "$LOGS/$ep.$k.out" -w '%{http_code} %{time_total}' -H "$AUTH" "$BASE$path")
        d1=$(ticks "$DAEMON_PID")
        [ "${t%% *}" = 200 ] || { log "ERROR: GET $path: HTTP ${t%% *}"; FAILED=1; }
        put "$ep.$k.seconds" "${t#* }"
        put "$ep.$k.daemon_cpu" "$(python3 -c "print(($d1 - $d0) / $HZ)")"
    done
done
put scrape.rss_kb "$(status_kb "$DAEMON_PID" VmRSS)"
put scrape.hwm_kb "$(status_kb "$DAEMON_PID" VmHWM)"
log "/metrics: $(grep '^metrics\.' "$RES" | tr '\n' ' '); VmRSS $(status_kb "$DAEMON_PID" VmRSS) kB, VmHWM $(status_kb "$DAEMON_PID" VmHWM) kB"
sigterm_daemon
put stop_seconds "$STOP_S"
put stop_rc "$STOP_RC"
log "SIGTERM: exited after $STOP_S s with status $STOP_RC"
if [ "$STOP_S" = no ] || [ "$STOP_RC" != 0 ]; then FAILED=1; fi

# ---------------------------------------------------------------- report
put loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
put backups "$N_BACKUPS"
put connections "$CONNS"
put wrk_threads "$WRK_THREADS"
put duration "$DURATION"
put after_settle "$AFTER_SETTLE"
put wrk_version "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
put sqlite_version "$(sqlite3 --version | awk '{print $1}')"
put arca_version "$("$ARCA" --version | head -1)"
put cpus "$(nproc)"
put cpu_model "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
put mem_gib "$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)"
if [ -n "$ARCA_BIN" ]; then
    put git_rev "${BENCH_ARCA_REV:-unknown (ARCA_BIN)}"
else
    put git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
fi
put date "$(date -u +%Y-%m-%d)"

python3 - "$RES" "$WORK/results-serve.md" "$WORK/results-serve.json" <<'PY'
import json, sys

res = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    res[k] = v
MiB = 1024.0  # kB per MiB


def mib(kb):
    return "%.1f MiB" % (int(kb) / MiB)


eps = []
i = 0
while "ep.%d.name" % i in res:
    w = json.loads(res["ep.%d.wrk" % i])
    secs = w["duration_us"] / 1e6
    errors = w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"]
    eps.append({
        "name": res["ep.%d.name" % i], "path": res["ep.%d.path" % i], "counted": res["ep.%d.counted" % i] == "1",
        "p50": w["p50"] / 1e3, "p90": w["p90"] / 1e3, "p99": w["p99"] / 1e3, "max": w["max"] / 1e3,
        "rps": w["requests"] / secs, "requests": w["requests"], "errors": errors,
        "resp_kib": w["bytes"] / max(w["requests"], 1) / 1024,
        "daemon_cpu": float(res["ep.%d.daemon_cpu" % i]), "wrk_cpu": float(res["ep.%d.wrk_cpu" % i]),
        "busy_cpu": float(res["ep.%d.busy_cpu" % i]), "secs": secs,
    })
    i += 1

n = int(res["backups"])
out = []
out.append("### %s backups, %s events, %s jobs, %s clients, %s" % (
    format(n, ","), format(int(res["events"]), ","), format(int(res["jobs"]), ","), res["connections"], res["date"]))
out.append("")
out.append("Machine: %s cores (%s), %s GiB RAM, shared with other work; local disk; git %s; %s; "
           "wrk %s (-t%s -c%s -d%ss --latency) on the same machine; SQLite %s (the sqlite3 shell)." % (
               res["cpus"], res["cpu_model"], res["mem_gib"], res["git_rev"], res["arca_version"],
               res["wrk_version"], res["wrk_threads"], res["connections"], res["duration"], res["sqlite_version"]))
out.append("1-minute load average %s at the start of the run, %s at the end." % (res["loadavg_start"], res["loadavg_end"]))
gen = "%s backups of a %s-byte SQLite database in one local repository (%.1f MiB), made by `arca backup`, " \
      "%s at a time, one row changed every %s backups: %s s (%s)" % (
          format(n, ","), format(int(res["db_bytes"]), ","), int(res["repo_bytes"]) / 2**20, res["gen_parallel"],
          res["gen_round"], res["gen_seconds"],
          "made in this run" if res["gen_reused"] == "no" else "made %s by %s, reused" % (res["gen_date"], res["gen_arca"]))
if res.get("gen_arca_bin", "same") != "same":
    gen = gen.replace("made by `arca backup`", "made by `arca backup` of %s" % res["gen_arca_bin"])
if res.get("gen_nice", "0") != "0":
    gen += " under nice %s" % res["gen_nice"]
out.append("Repository: " + gen + "; each tenth of them took %s s." % ", ".join(res["gen_deciles"].split()))
out.append("")
out.append("| endpoint (GET, limit=50) | p50 | p90 | p99 | max | requests/s | response | daemon CPU / request | errors |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for e in eps:
    out.append("| %s%s | %.2f ms | %.2f ms | %.2f ms | %.1f ms | %s | %.1f KiB | %.0f µs | %d |" % (
        e["name"], "" if e["counted"] else " (for scale)", e["p50"], e["p90"], e["p99"], e["max"],
        format(round(e["rps"]), ","), e["resp_kib"], e["daemon_cpu"] / max(e["requests"], 1) * 1e6, e["errors"]))
out.append("")
out.append("| daemon | |")
out.append("|---|---:|")
out.append("| start on the full catalog, until `listening on` (start scan of %s backups included) | %s s |" % (
    format(n, ","), res["start_seconds"]))
out.append("| idle after the start scan: VmRSS / VmHWM | %s / %s |" % (mib(res["idle.rss_kb"]), mib(res["idle.hwm_kb"])))
for k, what in (("after", "the issue's %d listings" % sum(e["counted"] for e in eps)),
                ("scale", "the %d endpoints for scale too" % sum(not e["counted"] for e in eps))):
    if k + ".rss_kb" in res:
        out.append("| after %s: VmRSS / VmHWM (threads) | %s / %s (%s) |" % (
            what, mib(res[k + ".rss_kb"]), mib(res[k + ".hwm_kb"]), res[k + ".threads"]))
        out.append("| the same, %s s idle later: VmRSS (threads) | %s (%s) |" % (
            res["after_settle"], mib(res[k + ".idle_rss_kb"]), res[k + ".idle_threads"]))
out.append("| threads when idle after the start | %s |" % res["idle.threads"])
for ep, what in (("metrics", "GET /metrics alone (cold windows cache, then warm)"), ("stats", "GET /api/v1/stats alone (twice)")):
    if "%s.1.seconds" % ep in res:
        out.append("| %s: time (daemon CPU) | %.3f s (%.2f s), %.3f s (%.2f s) |" % (
            what, float(res["%s.1.seconds" % ep]), float(res["%s.1.daemon_cpu" % ep]),
            float(res["%s.2.seconds" % ep]), float(res["%s.2.daemon_cpu" % ep])))
if "scrape.rss_kb" in res:
    out.append("| after those: VmRSS / VmHWM | %s / %s |" % (mib(res["scrape.rss_kb"]), mib(res["scrape.hwm_kb"])))
out.append("| SIGTERM to exit | %s |" % ("%s s (status %s)" % (res["stop_seconds"], res["stop_rc"])
                                         if res["stop_seconds"] != "no" else "**did not exit in 30 s**"))
out.append("| catalog file (%s events, %s jobs, %s backups) | %.1f MiB |" % (
    format(int(res["events"]), ","), format(int(res["jobs"]), ","), format(int(res["catalog_backups"]), ","),
    int(res["catalog_bytes"]) / 2**20))

tgt = []
counted = [e for e in eps if e["counted"]]
worst = max(counted, key=lambda e: e["p99"])
tgt.append(("p99 under 20 ms at %s clients, every listing and filter" % res["connections"],
            "worst %.2f ms (%s); %d of %d under 20 ms" % (worst["p99"], worst["name"],
                                                         sum(e["p99"] < 20 for e in counted), len(counted)),
            all(e["p99"] < 20 for e in counted)))
idle = int(res["idle.rss_kb"])
after = int(res["after.idle_rss_kb"])
tgt.append(("idle RSS under 64 MiB", "VmRSS %s after the start scan (VmHWM %s); %s idle after the issue's listings" % (
    mib(idle), mib(res["idle.hwm_kb"]), mib(after)), idle < 64 * 1024 and after < 64 * 1024))
stop = res["stop_seconds"]
tgt.append(("exits within 10 s of SIGTERM", "%s s" % stop if stop != "no" else "did not exit",
            stop != "no" and float(stop) <= 10 and res["stop_rc"] == "0"))
out.append("")
out.append("| target | measured | |")
out.append("|---|---|---|")
for t, m, ok in tgt:
    out.append("| %s | %s | %s |" % (t, m, "met" if ok else "**not met**"))
out.append("")
out.append("- Latency: wrk's histogram of every request in the %s s after a warm-up, %s connections kept alive, "
           "each sending its next request when the last is answered." % (res["duration"], res["connections"]))
out.append("- CPU seconds during each endpoint's %s s (the machine has %s cores: %s CPU-seconds): %s." % (
    res["duration"], res["cpus"], format(int(res["cpus"]) * float(res["duration"]), "g"), "; ".join(
        "%s: daemon %.1f, wrk %.1f, other processes %.1f" % (
            e["name"], e["daemon_cpu"], e["wrk_cpu"], max(0.0, e["busy_cpu"] - e["daemon_cpu"] - e["wrk_cpu"]))
        for e in eps)))
out.append("- from/to window: %s to %s (the middle third of the backups by start time)." % (res["from"], res["to"]))
text = "\n".join(out) + "\n"
print(text)
open(sys.argv[2], "w").write(text)
json.dump({"raw": res, "endpoints": eps, "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in tgt]},
          open(sys.argv[3], "w"), indent=1)
PY
log "wrote $WORK/results-serve.md"

[ "$FAILED" = 0 ] || die "an endpoint failed or the daemon did not stop cleanly on SIGTERM"
