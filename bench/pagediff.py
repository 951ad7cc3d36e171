#!/usr/bin/env python3
"""Count the pages that differ between two versions of a file.

Usage: pagediff.py A B [--page-size 4096] [--json]

A page is changed if its bytes differ in A and B; pages that exist in only
one of the files (the longer file's tail) count as changed.  Changed bytes is
the size of the changed pages as they are in B (or in A for pages B no longer
has), i.e. the amount of data an ideal page-level incremental backup stores.
"""

import argparse
import json
import os
import sys

CHUNK = 8 * 1024 * 1024


def pagediff(a_path, b_path, page_size=4096):
    a_size = os.path.getsize(a_path)
    b_size = os.path.getsize(b_path)
    changed_pages = 0
    changed_bytes = 0
    chunk = CHUNK - CHUNK % page_size
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        while True:
            ca = fa.read(chunk)
            cb = fb.read(chunk)
            if not ca and not cb:
                break
            if ca == cb:
                continue
            ma, mb = memoryview(ca), memoryview(cb)
            for off in range(0, max(len(ca), len(cb)), page_size):
                pa = ma[off:off + page_size]
                pb = mb[off:off + page_size]
                if pa != pb:
                    changed_pages += 1
                    changed_bytes += len(pb) if len(pb) else len(pa)
    total_pages = (max(a_size, b_size) + page_size - 1) // page_size
    return {
        "a": a_path, "b": b_path, "a_bytes": a_size, "b_bytes": b_size, "page_size": page_size,
        "total_pages": total_pages, "changed_pages": changed_pages, "changed_bytes": changed_bytes,
        "changed_fraction": changed_pages / total_pages if total_pages else 0.0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    r = pagediff(args.a, args.b, args.page_size)
    if args.json:
        print(json.dumps(r))
    else:
        print("changed pages: %d of %d (%.2f%%)" % (r["changed_pages"], r["total_pages"],
                                                   100 * r["changed_fraction"]))
        print("changed bytes: %d (%.1f MiB)" % (r["changed_bytes"], r["changed_bytes"] / 2**20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
