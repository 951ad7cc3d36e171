#!/usr/bin/env bash
# Arca vs restic on a ~1 GiB SQLite database: a reproducible benchmark.
#
#   bench/sqlite.sh                      # full run, 1024 MiB
#   BENCH_SIZE_MB=64 bench/sqlite.sh     # quick run
#
# Steps, for each tool in a fresh local repository under bench/work/:
#   1. first backup of the database          time, MiB/s, peak RSS, repo growth
#   2. backup of the same file again         time, MiB/s, bytes added
#   3. backup after a day of OLTP writes     time, MiB/s, bytes added, growth ratio
#      (bench/mutate_sqlite.py: 0.1% of rows updated, 0.05% inserted, ~5% of pages changed)
#   4. restore of the latest backup          time, MiB/s, peak RSS, cmp with the source
#   5. repository size after all backups
# plus the physical limits on the same file: cp and zstd -1 -T0.
# Write-heavy steps (restores, cp) run three times, each after `sync`, and report
# the median: write-back of earlier steps otherwise swings them several-fold.
#
# Every timed step runs on a warm page cache: the data it reads (the source file,
# or the repository for a restore) is read once right before the timer starts.
# "bytes added" is the growth of `du -sb` of the repository, for both tools;
# Arca's own `stored_bytes` is reported alongside.
#
# Environment:
#   BENCH_SIZE_MB=1024         size of the generated database in MiB
#   BENCH_SEED=42              generator seed;  BENCH_MUTATE_SEED=7: mutation seed
#   BENCH_SKIP_RESTIC=1        do not run restic
#   BENCH_SKIP_ARCA=1          do not build or run arca (to work on the rest of the bench)
#   BENCH_ARCA_BIN=PATH        use this arca binary instead of building target/release/arca
#   BENCH_ARCA_INIT_FLAGS=...  extra flags for `arca init`, e.g. "--block-size 65536 --compression-level 3"
#   BENCH_WORK=DIR             work directory (default bench/work, gitignored)
#
# Output: a Markdown table on stdout, also written to $BENCH_WORK/results-sqlite.md
# (and the raw figures to results-sqlite.json).  Exits non-zero if a restore
# fails or a restored file differs from the source (after printing the table).
# The repositories and logs of the last run stay in $BENCH_WORK/run-sqlite/.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_DIR/work}
SIZE_MB=${BENCH_SIZE_MB:-1024}
SEED=${BENCH_SEED:-42}
MUT_SEED=${BENCH_MUTATE_SEED:-7}
SKIP_RESTIC=${BENCH_SKIP_RESTIC:-0}
SKIP_ARCA=${BENCH_SKIP_ARCA:-0}
ARCA_INIT_FLAGS=${BENCH_ARCA_INIT_FLAGS:-}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-arca-bench}

RUN=$WORK/run-sqlite
LOGS=$RUN/logs
RES=$RUN/results.env   # key=value lines, rendered into the table at the end

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
APT_UPDATED=0
need() { # need COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "$1 not found; install the Debian package $2"
    log "installing $2"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >"$WORK/apt.log" 2>&1; then
        [ "$APT_UPDATED" = 1 ] || { apt-get update -q >>"$WORK/apt.log" 2>&1 || true; APT_UPDATED=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >>"$WORK/apt.log" 2>&1 \
            || die "apt-get install $2 failed, see $WORK/apt.log"
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 still not found after installing $2"
}

mkdir -p "$WORK"
need python3 python3
need zstd zstd
need cmp diffutils
[ -x /usr/bin/time ] || need /usr/bin/time time
[ "$SKIP_RESTIC" = 1 ] || need restic restic

ARCA=
if [ "$SKIP_ARCA" != 1 ]; then
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
fi

# ---------------------------------------------------------------- data set (cached)
hash_of() { cat "$@" | sha256sum | cut -c1-10; }
GEN_KEY="sqlite-${SIZE_MB}mb-s${SEED}-$(hash_of "$BENCH_DIR/gen_sqlite.py")"
MUT_KEY="$GEN_KEY-m${MUT_SEED}-$(hash_of "$BENCH_DIR/gen_sqlite.py" "$BENCH_DIR/mutate_sqlite.py")"
BASE=$WORK/$GEN_KEY.db
MUT=$WORK/$MUT_KEY.db

if [ -f "$BASE" ]; then
    log "reusing $BASE"
else
    # drop the cached databases of older generator versions of the same size and seed
    find "$WORK" -maxdepth 1 -name "sqlite-${SIZE_MB}mb-s${SEED}-*.db*" -delete
    log "generating $BASE (${SIZE_MB} MiB, seed $SEED)"
    t0=$(date +%s.%N)
    python3 "$BENCH_DIR/gen_sqlite.py" "$BASE" --size-mb "$SIZE_MB" --seed "$SEED" >&2
    log "generated in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
fi
if [ -f "$MUT" ]; then
    log "reusing $MUT"
else
    python3 "$BENCH_DIR/mutate_sqlite.py" "$BASE" "$MUT.tmp" --seed "$MUT_SEED" >&2
    mv "$MUT.tmp" "$MUT"
fi

rm -rf "$RUN"
mkdir -p "$LOGS"
: >"$RES"
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
put loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"

python3 "$BENCH_DIR/pagediff.py" --json "$BASE" "$MUT" >"$LOGS/pagediff.json"
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
CHANGED_BYTES=$(jget "$LOGS/pagediff.json" changed_bytes)
put source_bytes "$(stat -c %s "$BASE")"
put mutated_bytes "$(stat -c %s "$MUT")"
put changed_pages "$(jget "$LOGS/pagediff.json" changed_pages)"
put total_pages "$(jget "$LOGS/pagediff.json" total_pages)"
put changed_bytes "$CHANGED_BYTES"
log "mutation: $(jget "$LOGS/pagediff.json" changed_pages) of $(jget "$LOGS/pagediff.json" total_pages) pages changed ($CHANGED_BYTES bytes)"

# ---------------------------------------------------------------- helpers
SRC=$RUN/src/db.sqlite          # the live database file the tools back up
mkdir -p "$RUN/src"

# settle: write back dirty pages before a write-heavy timed step (restore, cp),
# so each one starts from the same state instead of paying for earlier steps.
settle() { sync; sleep 1; }

warm() { # read files once so that the timed step runs on a warm page cache
    local p
    for p in "$@"; do
        if [ -d "$p" ]; then find "$p" -type f -exec cat {} + >/dev/null; else cat "$p" >/dev/null; fi
    done
}

# timed NAME CMD...: runs CMD with stdout/stderr to $LOGS/NAME.{out,err};
# sets T (wall seconds, from date +%N) and RSS_KB (peak RSS from /usr/bin/time).
# Exits the bench if CMD fails; with TIMED_SOFT=1 returns 1 instead.
timed() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s%N)
    if ! /usr/bin/time -f '%e %M' -o "$LOGS/$name.time" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
        tail -20 "$LOGS/$name.err" >&2
        [ "${TIMED_SOFT:-0}" = 1 ] || die "$name failed: $*"
        log "ERROR: $name failed (log: $LOGS/$name.err): $*"
        return 1
    fi
    t1=$(date +%s%N)
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    RSS_KB=$(tail -1 "$LOGS/$name.time" | awk '{print $2}')
    log "$name: ${T} s, peak RSS ${RSS_KB} KiB"
}

# timed3 NAME CLEAN CMD...: three runs of a write-heavy step, each after
# `eval CLEAN` and settle; sets T to the median wall time and RSS_KB to the
# largest peak. The disk's write-back makes single runs vary several-fold.
timed3() {
    local name=$1 clean=$2; shift 2
    local ts=() rss=0 k
    for k in 1 2 3; do
        eval "$clean"
        settle
        timed "$name.$k" "$@" || return 1
        ts+=("$T")
        [ "$RSS_KB" -gt "$rss" ] && rss=$RSS_KB
    done
    T=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p)
    RSS_KB=$rss
    log "$name: median ${T} s of ${ts[*]}"
}

dusb() { du -sb "$1" | cut -f1; }

set_source() { # set_source FILE: make the live database file a copy of FILE
    rm -f "$SRC-journal" "$SRC-wal" "$SRC-shm"
    cp "$1" "$SRC"
}

FAILED=0
verify() { # verify TOOL RESTORED_FILE
    if cmp "$MUT" "$2" >"$LOGS/$1.cmp" 2>&1; then
        put "$1.restore.identical" yes
    else
        put "$1.restore.identical" NO
        FAILED=1
        log "ERROR: $1: restored file differs from the source: $(head -1 "$LOGS/$1.cmp")"
        cmp -s "$MUT" "$SRC" || log "note: the live source file itself no longer equals $MUT"
    fi
}

# backup_step TOOL STEP REPO CMD...: warm, time, record time/RSS/repo growth
backup_step() {
    local tool=$1 step=$2 repo=$3; shift 3
    local before after
    warm "$SRC"
    before=$(dusb "$repo")
    timed "$tool.$step" "$@"
    after=$(dusb "$repo")
    put "$tool.$step.time" "$T"
    put "$tool.$step.rss_kb" "$RSS_KB"
    put "$tool.$step.bytes" "$(stat -c %s "$SRC")"
    put "$tool.$step.added" "$((after - before))"
}

# ---------------------------------------------------------------- Arca
arca_json() { # arca_json FILE FIELD: a field of the (last) JSON object arca printed
    python3 - "$1" "$2" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    obj = json.loads(text)
except ValueError:
    obj = None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                break
            except ValueError:
                pass
if not isinstance(obj, dict):
    sys.exit("no JSON object in " + sys.argv[1])
v = obj.get(sys.argv[2], "")
print(v)
PY
}

bench_arca() {
    local repo=$RUN/repo-arca out=$RUN/restore-arca step
    log "== arca: $("$ARCA" --version 2>/dev/null || echo arca) ${ARCA_INIT_FLAGS:+(init flags: $ARCA_INIT_FLAGS)}"
    set_source "$BASE"
    # shellcheck disable=SC2086  # BENCH_ARCA_INIT_FLAGS is a list of flags
    "$ARCA" init --repo "$repo" $ARCA_INIT_FLAGS >"$LOGS/arca.init.out" 2>&1 \
        || { cat "$LOGS/arca.init.out" >&2; die "arca init failed"; }
    for step in first unchanged; do
        backup_step arca "$step" "$repo" "$ARCA" backup --repo "$repo" --source "sqlite://$SRC" --json
        put "arca.$step.stored_bytes" "$(arca_json "$LOGS/arca.$step.out" stored_bytes)"
        put "arca.$step.id" "$(arca_json "$LOGS/arca.$step.out" id)"
        put "arca.$step.duration_ms" "$(arca_json "$LOGS/arca.$step.out" duration_ms)"
    done
    set_source "$MUT"
    backup_step arca incremental "$repo" "$ARCA" backup --repo "$repo" --source "sqlite://$SRC" --json
    put arca.incremental.stored_bytes "$(arca_json "$LOGS/arca.incremental.out" stored_bytes)"
    put arca.incremental.id "$(arca_json "$LOGS/arca.incremental.out" id)"
    put arca.incremental.duration_ms "$(arca_json "$LOGS/arca.incremental.out" duration_ms)"
    "$ARCA" list --repo "$repo" --json >"$LOGS/arca.list.out" 2>&1 || log "warning: arca list failed"

    mkdir -p "$out"
    warm "$repo"
    if TIMED_SOFT=1 timed3 arca.restore 'rm -f "$out/db.sqlite"' "$ARCA" restore latest --repo "$repo" --to "$out/db.sqlite"; then
        put arca.restore.time "$T"
        put arca.restore.rss_kb "$RSS_KB"
        put arca.restore.bytes "$(stat -c %s "$out/db.sqlite")"
        verify arca "$out/db.sqlite"
    else
        put arca.restore.identical "FAILED (restore exited non-zero)"
        FAILED=1
    fi
    rm -rf "$out"
    put arca.repo_bytes "$(dusb "$repo")"
    put arca.version "$("$ARCA" --version 2>/dev/null | head -1 || echo arca)"
}

# ---------------------------------------------------------------- restic
restic_summary() { # restic_summary FILE FIELD: a field of the summary message of `backup --json`
    python3 - "$1" "$2" <<'PY'
import json, sys
summary = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("message_type") == "summary":
            summary = m
print(summary.get(sys.argv[2], ""))
PY
}

bench_restic() {
    local repo=$RUN/repo-restic out=$RUN/restore-restic step
    local r=(restic -r "$repo" --cache-dir "$RUN/restic-cache")
    log "== $(restic version)"
    set_source "$BASE"
    "${r[@]}" init --repository-version 2 >"$LOGS/restic.init.out" 2>&1 \
        || { cat "$LOGS/restic.init.out" >&2; die "restic init failed"; }
    for step in first unchanged incremental; do
        [ "$step" = incremental ] && set_source "$MUT"
        backup_step restic "$step" "$repo" "${r[@]}" backup "$SRC" --json
        put "restic.$step.data_added" "$(restic_summary "$LOGS/restic.$step.out" data_added)"
        put "restic.$step.files_unmodified" "$(restic_summary "$LOGS/restic.$step.out" files_unmodified)"
    done
    mkdir -p "$out"
    warm "$repo"
    if TIMED_SOFT=1 timed3 restic.restore 'rm -rf "$out"; mkdir -p "$out"' "${r[@]}" restore latest --target "$out"; then
        put restic.restore.time "$T"
        put restic.restore.rss_kb "$RSS_KB"
        put restic.restore.bytes "$(stat -c %s "$out$SRC")"
        verify restic "$out$SRC"
    else
        put restic.restore.identical "FAILED (restore exited non-zero)"
        FAILED=1
    fi
    rm -rf "$out"
    put restic.repo_bytes "$(dusb "$repo")"
    put restic.version "$(restic version | awk '{print $1" "$2}')"
}

# ---------------------------------------------------------------- physical limits
bench_limits() {
    local dst=$RUN/cp-target.db z=$RUN/src.zst
    set_source "$BASE"
    warm "$SRC"
    timed3 cp 'rm -f "$dst"' cp "$SRC" "$dst"
    put cp.time "$T"
    put cp.bytes "$(stat -c %s "$SRC")"
    rm -f "$dst"
    warm "$SRC"
    timed zstd zstd -1 -T0 -q -f "$SRC" -o "$z"
    put zstd.time "$T"
    put zstd.bytes "$(stat -c %s "$SRC")"
    put zstd.out_bytes "$(stat -c %s "$z")"
    put zstd.rss_kb "$RSS_KB"
    rm -f "$z"
}

[ "$SKIP_ARCA" = 1 ] || bench_arca
[ "$SKIP_RESTIC" = 1 ] || bench_restic
bench_limits
rm -rf "$RUN/src" "$RUN/restic-cache"

# ---------------------------------------------------------------- report
put size_mb "$SIZE_MB"
put seed "$SEED"
put mutate_seed "$MUT_SEED"
put arca_init_flags "$ARCA_INIT_FLAGS"
put loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
put cpus "$(nproc)"
put cpu_model "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
put mem_gib "$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)"
put sqlite_version "$(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')"
put git_rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted)"
put date "$(date -u +%Y-%m-%d)"

python3 - "$RES" "$WORK/results-sqlite.md" "$WORK/results-sqlite.json" <<'PY'
import json, sys

res = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    res[k] = v
MiB = 2**20


def num(k):
    v = res.get(k, "")
    try:
        return float(v)
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


def metrics(tool):
    if tool + ".first.time" not in res and tool + ".restore.time" not in res:
        return None
    m = {}
    for step in ("first", "unchanged", "incremental"):
        t, b = num(f"{tool}.{step}.time"), num(f"{tool}.{step}.bytes")
        m[step + ".time"] = t
        m[step + ".mibs"] = b / MiB / t if t else None
        m[step + ".rss"] = num(f"{tool}.{step}.rss_kb") * 1024 if num(f"{tool}.{step}.rss_kb") is not None else None
        m[step + ".added"] = num(f"{tool}.{step}.added")
    chg = num("changed_bytes")
    m["incremental.growth"] = m["incremental.added"] / chg if chg and m["incremental.added"] is not None else None
    t = num(f"{tool}.restore.time")
    m["restore.time"] = t
    m["restore.mibs"] = num(f"{tool}.restore.bytes") / MiB / t if t and num(f"{tool}.restore.bytes") else None
    m["restore.rss"] = num(f"{tool}.restore.rss_kb") * 1024 if num(f"{tool}.restore.rss_kb") is not None else None
    m["restore.identical"] = res.get(f"{tool}.restore.identical", "-")
    m["repo"] = num(f"{tool}.repo_bytes")
    for step in ("first", "unchanged", "incremental"):
        m[step + ".own"] = num(f"{tool}.{step}.stored_bytes" if tool == "arca" else f"{tool}.{step}.data_added")
    return m


A, R = metrics("arca"), metrics("restic")

OWN = "added, tool's own report"
rows = [  # (step, metric, key, kind)
    ("first backup", "time", "first.time", "s"),
    ("", "throughput", "first.mibs", "rate"),
    ("", "peak RSS", "first.rss", "bytes"),
    ("", "repository growth (du)", "first.added", "bytes"),
    ("", OWN, "first.own", "own"),
    ("unchanged backup", "time", "unchanged.time", "s"),
    ("", "throughput", "unchanged.mibs", "rate"),
    ("", "bytes added (du)", "unchanged.added", "bytes"),
    ("", OWN, "unchanged.own", "own"),
    ("incremental backup", "time", "incremental.time", "s"),
    ("", "throughput", "incremental.mibs", "rate"),
    ("", "peak RSS", "incremental.rss", "bytes"),
    ("", "bytes added (du)", "incremental.added", "bytes"),
    ("", "stored growth ratio (added / changed-page bytes)", "incremental.growth", "x"),
    ("", OWN, "incremental.own", "own"),
    ("restore latest", "time", "restore.time", "s"),
    ("", "throughput", "restore.mibs", "rate"),
    ("", "peak RSS", "restore.rss", "bytes"),
    ("", "byte-identical (cmp)", "restore.identical", "str"),
    ("repository", "size after 3 backups (du)", "repo", "bytes"),
]


def fmt(v, kind):
    if v is None or v == "":
        return "-"
    if kind == "s":
        return "%.2f s" % v
    if kind == "rate":
        return "%.0f MiB/s" % v if v >= 100 else "%.1f MiB/s" % v
    if kind in ("bytes", "own"):
        return fbytes(v)
    if kind == "x":
        return "%.2f" % v
    return str(v)


out = []
size = num("source_bytes")
out.append("### SQLite, %d MiB database (%s bytes), %s" % (round(size / MiB), format(int(size), ","), res["date"]))
out.append("")
out.append("Machine: %s cores (%s), %s GiB RAM; local disk; SQLite %s; generator `bench/gen_sqlite.py --size-mb %s "
           "--seed %s`, mutation `bench/mutate_sqlite.py --seed %s`; git %s." % (
               res["cpus"], res["cpu_model"], res["mem_gib"], res["sqlite_version"], res["size_mb"], res["seed"],
               res["mutate_seed"], res["git_rev"]))
versions = []
if A:
    versions.append("%s (defaults%s)" % (res.get("arca.version") or "arca",
                                         ", init flags `%s`" % res["arca_init_flags"] if res["arca_init_flags"] else ""))
if R:
    versions.append("%s (repository v2, compression auto)" % res.get("restic.version", "restic"))
if versions:
    out.append("Tools: " + ", ".join(versions) + ".")
out.append("1-minute load average %s at the start of the measurements, %s at the end." % (
    res["loadavg_start"], res["loadavg_end"]))
out.append("Every timed step ran on a warm page cache (its input was read once just before the timer started); "
           "bytes added = growth of `du -sb` of the repository.")
out.append("Mutation: 0.1%% of the rows of every table updated and 0.05%% inserted: %s of %s 4 KiB pages changed "
           "(%.2f%%), changed-page bytes %s." % (
               format(int(num("changed_pages")), ","), format(int(num("total_pages")), ","),
               100 * num("changed_pages") / num("total_pages"), fbytes(num("changed_bytes"))))
out.append("")
out.append("| step | metric | Arca | restic | Arca/restic |")
out.append("|---|---|---:|---:|---:|")
for step, metric, key, kind in rows:
    a = A.get(key) if A else None
    r = R.get(key) if R else None
    ratio = "-"
    if kind not in ("str", "own") and isinstance(a, float) and isinstance(r, float) and r:
        ratio = "%.2f" % (a / r)
    out.append("| %s | %s | %s | %s | %s |" % (step, metric, fmt(a, kind) if A else "not run",
                                               fmt(r, kind) if R else "not run", ratio))
notes = []
if R and res.get("restic.unchanged.files_unmodified") == "1":
    notes.append("restic's unchanged backup does not read the file: it finds it unmodified by its metadata "
                 "(size, mtime, inode) and reuses the parent snapshot's content.")
notes.append("Before the incremental backup the mutated file is copied over the source (same path, new mtime and size), "
             "so neither tool can skip it by its metadata.")
notes.append("\"added, tool's own report\": Arca's `stored_bytes`; restic's `data_added` (before compression).")
notes.append("Throughput = source (or restored) bytes / wall time; MiB = 2^20 bytes. "
             "Ratios are Arca's figure divided by restic's.")
out.append("")
out.extend("- " + n for n in notes)
out.append("")
out.append("| physical limit (same file, same disk) | time | throughput | output |")
out.append("|---|---:|---:|---:|")
cp_t = num("cp.time")
out.append("| `cp` (median of 3) | %.2f s | %s | %s |" % (cp_t, fmt(num("cp.bytes") / MiB / cp_t, "rate"),
                                                               fbytes(num("cp.bytes"))))
z_t = num("zstd.time")
out.append("| `zstd -1 -T0` | %.2f s | %s | %s (ratio %.2f) |" % (
    z_t, fmt(num("zstd.bytes") / MiB / z_t, "rate"), fbytes(num("zstd.out_bytes")),
    num("zstd.bytes") / num("zstd.out_bytes")))
text = "\n".join(out) + "\n"
print(text)
open(sys.argv[2], "w").write(text)
json.dump({"raw": res, "arca": A, "restic": R}, open(sys.argv[3], "w"), indent=1)
PY
log "wrote $WORK/results-sqlite.md"

if [ "$FAILED" != 0 ]; then
    die "a restore failed or a restored file differs from the source"
fi
