#!/usr/bin/env bash
# Writes a golden repository: two backups of a small SQLite database, the
# second after a few rows changed (so it holds delta frames), and
# expected.json with the BLAKE3 of the database each backup holds.
#
#   crates/arca-cli/tests/golden/make.sh ARCA_BIN OUT_DIR
#
# Each golden repository is written once, by the arca of its format, and
# committed; tests/e2e/golden.rs reads them with today's arca. Never
# regenerate one: a format change that cannot read it is the failure the
# test exists to catch.
set -euo pipefail
ARCA=$1
OUT=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$WORK/app.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("PRAGMA page_size=4096; PRAGMA journal_mode=DELETE;"
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, pad TEXT);")
x = 88172645463325252
for i in range(600):
    x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF; x ^= x >> 7; x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
    c.execute("INSERT INTO t VALUES (?, ?, ?)", (i, x % 1000000, "row %d %x " % (i, x) + "lorem ipsum " * (x % 7)))
c.commit()
PY
"$ARCA" init --repo "$OUT" >/dev/null
first=$("$ARCA" backup --repo "$OUT" --source "sqlite://$WORK/app.db")
h1=$(python3 -c "import sys;from hashlib import sha256;print(sha256(open(sys.argv[1],'rb').read()).hexdigest())" "$WORK/app.db")
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('UPDATE t SET v = v + 1 WHERE id % 50 = 0'); c.commit()" "$WORK/app.db"
second=$("$ARCA" backup --repo "$OUT" --source "sqlite://$WORK/app.db")
h2=$(python3 -c "import sys;from hashlib import sha256;print(sha256(open(sys.argv[1],'rb').read()).hexdigest())" "$WORK/app.db")
rm -rf "$OUT/locks" "$OUT/.tmp"
printf '{"%s": "%s", "%s": "%s"}\n' "$first" "$h1" "$second" "$h2" >"$OUT/../$(basename "$OUT").expected.json"
