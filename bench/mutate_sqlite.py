#!/usr/bin/env python3
"""Apply a day of OLTP writes to a copy of a database made by gen_sqlite.py.

Usage: mutate_sqlite.py SRC.db DST.db [--seed 7] [--update-frac 0.001] [--insert-frac 0.0005]

Copies SRC to DST, then in DST updates --update-frac of the rows of every
table (random rows, so the writes are scattered over the file as OLTP writes
are: customer balances and logins, order status changes, price and stock
changes, item corrections, sessions seen again, events marked as processed) and
inserts --insert-frac new rows per table (new customers, orders with their
items, sessions, events, products).  Indexed columns change too, so index pages move as well.
Deterministic for a given seed and source file.  Prints the fraction of 4 KiB
pages that changed (about 5% with the defaults).
"""

import argparse
import os
import random
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_sqlite  # noqa: E402
from gen_sqlite import Gen, iso  # noqa: E402
from pagediff import pagediff  # noqa: E402

NEXT_STATUS = {"pending": "paid", "paid": "shipped", "shipped": "delivered", "delivered": "refunded",
               "cancelled": "cancelled", "refunded": "refunded"}


def pick(rng, hi, n):
    """n distinct random ids in 1..hi, in random order."""
    n = min(n, hi)
    return rng.sample(range(1, hi + 1), n)


def mutate(src, dst, seed, update_frac, insert_frac):
    t0 = time.time()
    for p in (dst, dst + "-journal", dst + "-wal", dst + "-shm"):
        if os.path.exists(p):
            os.unlink(p)
    shutil.copyfile(src, dst)
    rng = random.Random(seed)
    g = Gen(rng)
    db = sqlite3.connect(dst, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")  # the app's normal rollback journal
    db.execute("PRAGMA cache_size=-1048576")
    q = lambda sql, *a: db.execute(sql, a).fetchone()[0]  # noqa: E731
    n = {t: q("SELECT max(id) FROM " + t) for t in gen_sqlite.TABLES}
    now = q("SELECT max(ts) FROM events") / 1000.0 + 3600
    nu = {t: max(1, round(c * update_frac)) for t, c in n.items()}
    ni = {t: max(1, round(c * insert_frac)) for t, c in n.items()}

    db.execute("BEGIN")
    # -- updates ------------------------------------------------------------
    for cid in pick(rng, n["customers"], nu["customers"]):
        now += rng.random()
        db.execute("UPDATE customers SET balance_cents = balance_cents + ?, updated_at = ?, "
                   "metadata = json_set(metadata, '$.last_login', ?, '$.login_count', "
                   "json_extract(metadata, '$.login_count') + 1) WHERE id = ?",
                   (rng.randint(-20000, 20000), iso(now), iso(now), cid))
    for pid in pick(rng, n["products"], nu["products"]):
        db.execute("UPDATE products SET price_cents = ?, stock = ? WHERE id = ?",
                   (rng.randint(199, 250000), rng.randrange(1000), pid))
    for oid in pick(rng, n["orders"], nu["orders"]):
        now += rng.random()
        st = q("SELECT status FROM orders WHERE id = ?", oid)
        db.execute("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?", (NEXT_STATUS[st], iso(now), oid))
    for iid in pick(rng, n["order_items"], nu["order_items"]):
        db.execute("UPDATE order_items SET quantity = quantity + 1, discount_cents = ? WHERE id = ?",
                   (rng.randrange(0, 2000), iid))
    for sid in pick(rng, n["sessions"], nu["sessions"]):
        now += rng.random()
        db.execute("UPDATE sessions SET last_seen_at = ?, event_count = event_count + 1 WHERE id = ?",
                   (iso(now), sid))
    for eid in pick(rng, n["events"], nu["events"]):
        db.execute("UPDATE events SET payload = json_set(payload, '$.processed', json('true'), '$.batch', ?) "
                   "WHERE id = ?", (rng.randrange(10**6), eid))

    # -- inserts ------------------------------------------------------------
    nprod = n["products"]
    for i in range(ni["products"]):
        db.execute("INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?)", g.product(nprod + 1 + i, now))
    nprod += ni["products"]
    for i in range(ni["customers"]):
        now += rng.random() * 10
        db.execute("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", g.customer(n["customers"] + 1 + i, now))
    ncust = n["customers"] + ni["customers"]
    iid = n["order_items"]
    for i in range(ni["orders"]):
        now += rng.random() * 10
        cid = rng.randint(1, ncust)
        country, city = db.execute("SELECT country, city FROM customers WHERE id = ?", (cid,)).fetchone()
        items, total = [], 0
        for _ in range(1 + int(rng.random() * rng.random() * 8)):
            iid += 1
            pid = rng.randint(1, nprod)
            price = q("SELECT price_cents FROM products WHERE id = ?", pid)
            qty = 1 + int(rng.random() * rng.random() * 4)
            total += price * qty
            items.append((iid, n["orders"] + 1 + i, pid, qty, price, 0))
        db.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?)",
                   g.order(n["orders"] + 1 + i, (cid, country, city), now, len(items), total))
        db.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?)", items)
    # new sessions with their events, and events of sessions still running
    sid, eid = n["sessions"], n["events"]
    open_sessions = []
    for _ in range(ni["sessions"]):
        sid += 1
        cid = rng.randint(1, ncust)
        ne = 1 + int(rng.random() * 12)
        db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)", g.session(sid, cid, now, ne))
        open_sessions.append((sid, cid))
    while eid < n["events"] + ni["events"]:
        if open_sessions and rng.random() < 0.7:
            s_id, cid = open_sessions[rng.randrange(len(open_sessions))]
        else:
            s_id = rng.randint(1, n["sessions"])
            cid = q("SELECT customer_id FROM sessions WHERE id = ?", s_id)
        eid += 1
        now += rng.random() * 5
        db.execute("INSERT INTO events VALUES (?,?,?,?,?,?)", g.event(eid, s_id, cid, now, nprod))
    db.execute("COMMIT")
    db.close()
    d = pagediff(src, dst)
    print("mutated %s -> %s in %.1f s: updated %s; inserted %s" % (
        src, dst, time.time() - t0, ", ".join("%s=%d" % kv for kv in nu.items()),
        ", ".join("%s=%d" % kv for kv in ni.items()) + " (+%d order_items)" % (iid - n["order_items"])))
    print("changed pages: %d of %d (%.2f%%), changed bytes: %d" % (
        d["changed_pages"], d["total_pages"], 100 * d["changed_fraction"], d["changed_bytes"]))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--update-frac", type=float, default=0.001)
    ap.add_argument("--insert-frac", type=float, default=0.0005)
    a = ap.parse_args()
    mutate(a.src, a.dst, a.seed, a.update_frac, a.insert_frac)


if __name__ == "__main__":
    main()
