#!/usr/bin/env python3
"""Generate a deterministic, realistic SQLite database for benchmarks.

The database looks like the store of a small web shop that has been running
for a while: customers, products, orders, order_items and an events table with
JSON payloads, timestamps and several secondary indexes.  Rows are inserted in
simulated time order, batch by batch, with all indexes in place, so that the
pages of the tables and indexes are interleaved in the file and the indexes
have the fill factor of B-trees grown by inserts (as in a real OLTP database),
not the tightly packed pages of CREATE INDEX.

Compressibility is realistic: repeated JSON keys, small vocabularies, dates
and user agents compress well; ids, hashes, session tokens and prices do not.

Everything is driven by one random.Random(seed): the same --seed, --size-mb
and SQLite version give the same file, byte for byte.

Usage: gen_sqlite.py OUT.db [--size-mb 1024] [--seed 42]
"""

import argparse
import os
import random
import sqlite3
import sys
import time

PAGE_SIZE = 4096
TABLES = ("customers", "products", "orders", "order_items", "sessions", "events")

SCHEMA = """
CREATE TABLE customers (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    phone         TEXT,
    country       TEXT NOT NULL,
    city          TEXT NOT NULL,
    address       TEXT,
    status        TEXT NOT NULL,
    tier          INTEGER NOT NULL,
    balance_cents INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    metadata      TEXT
);
CREATE UNIQUE INDEX customers_email ON customers(email);
CREATE INDEX customers_country_city ON customers(country, city);
CREATE INDEX customers_created_at ON customers(created_at);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    stock       INTEGER NOT NULL,
    description TEXT,
    attributes  TEXT,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX products_sku ON products(sku);
CREATE INDEX products_category_price ON products(category, price_cents);

CREATE TABLE orders (
    id               INTEGER PRIMARY KEY,
    customer_id      INTEGER NOT NULL REFERENCES customers(id),
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    total_cents      INTEGER NOT NULL,
    item_count       INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    shipping_address TEXT,
    note             TEXT
);
CREATE INDEX orders_customer ON orders(customer_id, created_at);
CREATE INDEX orders_status_updated ON orders(status, updated_at);
CREATE INDEX orders_created_at ON orders(created_at);

CREATE TABLE order_items (
    id               INTEGER PRIMARY KEY,
    order_id         INTEGER NOT NULL REFERENCES orders(id),
    product_id       INTEGER NOT NULL REFERENCES products(id),
    quantity         INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    discount_cents   INTEGER NOT NULL
);
CREATE INDEX order_items_order ON order_items(order_id);
CREATE INDEX order_items_product ON order_items(product_id);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token        TEXT NOT NULL,
    customer_id  INTEGER NOT NULL REFERENCES customers(id),
    started_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    event_count  INTEGER NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    referrer     TEXT,
    screen       TEXT
);
CREATE UNIQUE INDEX sessions_token ON sessions(token);
CREATE INDEX sessions_customer ON sessions(customer_id, started_at);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    ts          INTEGER NOT NULL,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),
    customer_id INTEGER NOT NULL,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL
);
CREATE INDEX events_customer_ts ON events(customer_id, ts);
CREATE INDEX events_type_ts ON events(type, ts);
CREATE INDEX events_session ON events(session_id);
"""

# --- vocabularies -----------------------------------------------------------

COUNTRIES = [
    ("US", ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Seattle", "Denver", "Boston", "Austin", "Miami"]),
    ("DE", ["Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart", "Leipzig"]),
    ("FR", ["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille"]),
    ("GB", ["London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol"]),
    ("CN", ["Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan"]),
    ("JP", ["Tokyo", "Osaka", "Yokohama", "Nagoya", "Sapporo", "Fukuoka"]),
    ("BR", ["Sao Paulo", "Rio de Janeiro", "Brasilia", "Salvador", "Fortaleza"]),
    ("IN", ["Mumbai", "Delhi", "Bangalore", "Hyderabad", "Chennai", "Pune"]),
    ("ES", ["Madrid", "Barcelona", "Valencia", "Seville", "Bilbao"]),
    ("IT", ["Rome", "Milan", "Naples", "Turin", "Florence", "Bologna"]),
    ("CA", ["Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa"]),
    ("AU", ["Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide"]),
]
CURRENCY = {"US": "USD", "DE": "EUR", "FR": "EUR", "GB": "GBP", "CN": "CNY", "JP": "JPY",
            "BR": "BRL", "IN": "INR", "ES": "EUR", "IT": "EUR", "CA": "CAD", "AU": "AUD"}
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me",
           "mail.ru", "qq.com", "163.com", "web.de", "gmx.de", "orange.fr", "example.org"]
STREET_KINDS = ["Street", "Avenue", "Road", "Lane", "Boulevard", "Way", "Drive", "Court", "Place"]
CATEGORIES = ["books", "electronics", "garden", "toys", "kitchen", "sports", "beauty", "office",
              "automotive", "music", "clothing", "shoes", "pet", "health", "grocery", "tools"]
COLORS = ["black", "white", "red", "blue", "green", "silver", "gold", "grey", "navy", "pink"]
ORDER_STATUS = ["pending", "paid", "shipped", "delivered", "delivered", "delivered", "delivered",
                "cancelled", "refunded"]
CUSTOMER_STATUS = ["active"] * 12 + ["inactive", "suspended", "pending_verification"]
EVENT_TYPES = ["page_view"] * 10 + ["search"] * 3 + ["product_view"] * 5 + ["add_to_cart"] * 2 + \
              ["remove_from_cart", "checkout_started", "login", "logout", "wishlist_add", "review_posted"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.72",
]
PAGES = ["/", "/search", "/cart", "/checkout", "/account", "/account/orders", "/deals", "/help",
         "/category/{}", "/product/{}", "/product/{}/reviews"]
REFERRERS = ["", "https://www.google.com/", "https://www.bing.com/", "https://t.co/", "https://www.facebook.com/",
             "https://duckduckgo.com/", "https://news.ycombinator.com/", "https://www.reddit.com/"]
NOTES = ["", "", "", "", "", "Leave at the front door", "Please call before delivery", "Gift - no invoice please",
         "Deliver after 5pm", "Ring twice", "Fragile", "Back entrance", "Use the side gate"]

SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "sor", "vel", "an", "is", "um", "pre", "co", "dra", "fi",
             "ne", "tu", "ba", "gor", "li", "mo", "qui", "ser", "ta", "ven", "xo", "za", "el", "ar",
             "on", "ex", "pla", "stra", "ber", "cle", "dor", "gan", "hul", "jor", "kin", "lum"]


def make_words(rng, n, lo=1, hi=4):
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(lo, hi))))
    return sorted(words)


def iso(ts):
    """Seconds since the epoch -> ISO-8601 UTC with milliseconds (no locale, no tz db)."""
    s = int(ts)
    ms = int((ts - s) * 1000)
    days, rem = divmod(s, 86400)
    # civil_from_days (Howard Hinnant), proleptic Gregorian
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, ms)


class Gen:
    """Row factories; shared with mutate_sqlite.py so that inserted rows look alike."""

    def __init__(self, rng):
        self.rng = rng
        # the vocabularies are the shop's "language": the same for every seed, so
        # that rows added by mutate_sqlite.py look like the generated ones
        vr = random.Random(20240101)
        self.words = make_words(vr, 3000)
        self.first = [w.capitalize() for w in make_words(vr, 800, 2, 3)]
        self.last = [w.capitalize() for w in make_words(vr, 1500, 2, 4)]
        self.streets = [w.capitalize() for w in make_words(vr, 600, 2, 3)]

    def sentence(self, n):
        r = self.rng.random
        w = self.words
        nw = len(w)
        s = " ".join([w[int(r() * r() * nw)] for _ in range(n)])  # skewed: frequent words
        return s[0].upper() + s[1:] + "."

    def address(self, city, country):
        r = self.rng
        return "%d %s %s, %s %05d, %s" % (r.randint(1, 9999), self.streets[r.randrange(len(self.streets))],
                                          STREET_KINDS[r.randrange(len(STREET_KINDS))], city,
                                          r.randrange(100000), country)

    def customer(self, cid, now):
        r = self.rng
        fn = self.first[r.randrange(len(self.first))]
        ln = self.last[r.randrange(len(self.last))]
        country, cities = COUNTRIES[min(int(r.random() * r.random() * 1.6 * len(COUNTRIES)), len(COUNTRIES) - 1)]
        city = cities[r.randrange(len(cities))]
        email = "%s.%s%d@%s" % (fn.lower(), ln.lower(), cid, DOMAINS[r.randrange(len(DOMAINS))])
        phone = "+%d %03d %03d %04d" % (r.randint(1, 99), r.randrange(1000), r.randrange(1000), r.randrange(10000))
        meta = ('{"newsletter":%s,"locale":"%s","marketing_source":"%s","tags":["%s","%s"],'
                '"last_login":"%s","login_count":%d,"api_key_hash":"%032x"}') % (
            "true" if r.random() < 0.4 else "false", country.lower() + "-" + country,
            ["organic", "ads", "referral", "email", "social"][r.randrange(5)],
            self.words[r.randrange(300)], self.words[r.randrange(300)], iso(now), r.randrange(1, 500),
            r.getrandbits(128))
        ts = iso(now)
        return (cid, email, fn + " " + ln, phone, country, city, self.address(city, country),
                CUSTOMER_STATUS[r.randrange(len(CUSTOMER_STATUS))], r.randrange(4),
                r.randrange(-5000, 500000), ts, ts, meta)

    def product(self, pid, now):
        r = self.rng
        cat = CATEGORIES[r.randrange(len(CATEGORIES))]
        attrs = '{"color":"%s","weight_g":%d,"dims_mm":[%d,%d,%d],"rating":%.1f,"reviews":%d}' % (
            COLORS[r.randrange(len(COLORS))], r.randint(20, 20000), r.randint(10, 900), r.randint(10, 900),
            r.randint(5, 400), r.uniform(1, 5), r.randrange(3000))
        return (pid, "SKU-%s-%07d" % (cat[:3].upper(), pid), self.sentence(r.randint(2, 5))[:-1], cat,
                r.randint(199, 250000), r.randrange(1000), self.sentence(r.randint(20, 60)), attrs, iso(now))

    def order(self, oid, cust, now, item_count, total):
        r = self.rng
        cid, country, city = cust
        st = ORDER_STATUS[r.randrange(len(ORDER_STATUS))]
        note = NOTES[r.randrange(len(NOTES))]
        return (oid, cid, st, CURRENCY[country], total, item_count, iso(now),
                iso(now + r.randrange(0, 7 * 86400)), self.address(city, country), note or None)

    def session(self, sid, cid, now, nevents):
        r = self.rng
        ua = USER_AGENTS[min(int(r.random() * r.random() * 2 * len(USER_AGENTS)), len(USER_AGENTS) - 1)]
        return (sid, "%032x" % r.getrandbits(128), cid, iso(now), iso(now + nevents * 20), nevents,
                "%d.%d.%d.%d" % (r.randrange(1, 224), r.randrange(256), r.randrange(256), r.randrange(256)), ua,
                REFERRERS[r.randrange(len(REFERRERS))] or None,
                "%dx%d" % ([1920, 1366, 390, 414, 1440, 2560][r.randrange(6)],
                           [1080, 768, 844, 896, 900, 1440][r.randrange(6)]))

    def event(self, eid, sid, cid, now, nprod):
        r = self.rng
        et = EVENT_TYPES[r.randrange(len(EVENT_TYPES))]
        page = PAGES[r.randrange(len(PAGES))]
        if "{}" in page:
            page = page.format(r.randrange(1, nprod + 1))
        extra = ""
        if et == "search":
            extra = ',"query":"%s","results":%d' % (self.sentence(r.randint(1, 4))[:-1].lower(), r.randrange(500))
        elif et in ("product_view", "add_to_cart", "remove_from_cart", "wishlist_add"):
            extra = ',"product_id":%d,"price_cents":%d' % (r.randrange(1, nprod + 1), r.randint(199, 250000))
        elif et == "review_posted":
            extra = ',"product_id":%d,"stars":%d,"text":"%s"' % (r.randrange(1, nprod + 1), r.randint(1, 5),
                                                                  self.sentence(r.randint(8, 40)))
        payload = '{"path":"%s","status":%d,"duration_ms":%d,"request_id":"%016x"%s}' % (
            page, 200 if r.random() < 0.97 else 404, int(r.expovariate(1 / 800)), r.getrandbits(64), extra)
        return (eid, int(now * 1000), sid, cid, et, payload)


def generate(out, size_mb, seed, quiet=False):
    t0 = time.time()
    target = size_mb * 1024 * 1024
    rng = random.Random(seed)
    g = Gen(rng)
    tmp = out + ".tmp"
    for p in (tmp, tmp + "-journal"):
        if os.path.exists(p):
            os.unlink(p)
    db = sqlite3.connect(tmp, isolation_level=None)
    db.execute("PRAGMA page_size=%d" % PAGE_SIZE)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-%d" % min(4 * 1024 * 1024, max(65536, size_mb * 1024 * 2)))  # KiB
    db.executescript(SCHEMA)

    now = 1609459200.0  # 2021-01-01T00:00:00Z: the shop opens
    db.execute("BEGIN")
    nprod = max(200, min(20000, size_mb * 20))
    db.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?)",
                   [g.product(i, now - rng.randrange(86400 * 30)) for i in range(1, nprod + 1)])
    prices = [row[0] for row in db.execute("SELECT price_cents FROM products ORDER BY id")]

    customers = []  # (id, country, city) of every customer, for foreign keys
    cid = oid = iid = sid = eid = 0
    batch = 0
    last_commit_pages = 0
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    r = rng.random
    while pages * PAGE_SIZE < target:
        batch += 1
        # one batch = about 2 simulated hours of traffic
        crow, orow, irow, srow, erow = [], [], [], [], []
        for _ in range(300):
            cid += 1
            now += r() * 24
            c = g.customer(cid, now)
            crow.append(c)
            customers.append((cid, c[4], c[5]))
        nc = len(customers)
        for _ in range(1200):
            oid += 1
            now += r() * 6
            # recent customers order more often than old ones
            cust = customers[nc - 1 - int(r() * r() * nc)]
            n = 1 + int(r() * r() * 8)
            total = 0
            for _ in range(n):
                iid += 1
                pid = 1 + int(r() * r() * nprod)
                q = 1 + int(r() * r() * 4)
                disc = 0 if r() < 0.8 else int(prices[pid - 1] * q * 0.1)
                total += prices[pid - 1] * q - disc
                irow.append((iid, oid, pid, q, prices[pid - 1], disc))
            orow.append(g.order(oid, cust, now, n, total))
        for _ in range(300):  # sessions
            sid += 1
            cust = customers[nc - 1 - int(r() * r() * nc)][0]
            t = now - r() * 7200
            ne = 1 + int(r() * 12)
            srow.append(g.session(sid, cust, t, ne))
            for _ in range(ne):
                eid += 1
                t += r() * 40
                erow.append(g.event(eid, sid, cust, t, nprod))
        db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", crow)
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?)", orow)
        db.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?)", irow)
        db.executemany("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)", srow)
        db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)", erow)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        if pages - last_commit_pages >= 16384:  # commit every ~64 MiB of growth
            db.execute("COMMIT")
            db.execute("BEGIN")
            last_commit_pages = pages
            if not quiet:
                el = time.time() - t0
                print("  %6.0f MiB  %5.1f s  %5.1f MiB/s" % (pages * PAGE_SIZE / 2**20, el,
                                                              pages * PAGE_SIZE / 2**20 / el), file=sys.stderr)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=DELETE")
    counts = {t: db.execute("SELECT count(*) FROM " + t).fetchone()[0]
              for t in TABLES}
    db.close()
    os.replace(tmp, out)
    el = time.time() - t0
    size = os.path.getsize(out)
    if not quiet:
        print("generated %s: %d bytes (%.1f MiB), %d pages, %.1f s; rows: %s" % (
            out, size, size / 2**20, size // PAGE_SIZE, el,
            ", ".join("%s=%d" % kv for kv in counts.items())))
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size-mb", type=int, default=1024, help="target file size in MiB (default 1024)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    generate(a.out, a.size_mb, a.seed, a.quiet)


if __name__ == "__main__":
    main()
