#!/usr/bin/env python3
"""Query benchmark: capq against DuckDB and Polars on the same segments, in one run.

    scripts/bench-query.sh [--events 30000000] [--rounds 3] [--dir DIR]

A standard set of questions an analyst asks of a capture (group-bys on low- and
high-cardinality strings, a distinct count, a join on exec_id, time buckets, list
functions on argv, point filters on pid and on path), each as a whole process (start,
read the footers, plan, run, print to /dev/null), best of --rounds, engines taking turns.
DuckDB reads the tree with `read_parquet(..., hive_partitioning=true)`, Polars with
`scan_parquet(..., hive_partitioning=True)` and its SQL context; both run in a fresh
Python (about 0.1 s of which is starting Python and importing the module: the `python`
row says how much); their query alone is timed inside the process too, and the ratios are
against that (capq's time is its whole process: the stricter comparison). Prints one row
per query: seconds per engine, capq / DuckDB and capq / Polars, and their geometric
means. Each engine's answer must be capq's (the integers of each row, in order), or the
run stops without a ratio.

usage: bench_query.py CAPQ CAPTURE_DIR [--rounds 3] [--only NAME,...] [--against OTHER_CAPQ]

With --against, this capq and another build take turns on the same set (no DuckDB or
Polars): seconds each, capq / other per query and in geometric mean; the answers must be
the same.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

# name: (capq / DataFusion SQL, DuckDB SQL, Polars SQL or None). The tables are the
# capture's; the DuckDB and Polars runs define them as views over the same files.
QUERIES = {
    "op count (low card.)": (
        "SELECT op, count(*) AS n, sum(bytes_read) AS r, sum(bytes_written) AS w FROM file GROUP BY op ORDER BY op",
    ) * 3,
    "path top 10 (high card.)": (
        "SELECT path, count(*) AS c FROM file GROUP BY path ORDER BY c DESC, path LIMIT 10",
    ) * 3,
    "distinct paths per comm": (
        "SELECT comm, count(DISTINCT path) AS paths, max(bytes_read) AS m FROM file GROUP BY comm "
        "ORDER BY paths DESC, comm LIMIT 10",
    ) * 3,
    "join exec on exec_id": (
        "SELECT e.comm, count(*) AS n FROM file f JOIN exec e ON f.exec_id = e.exec_id "
        "GROUP BY e.comm ORDER BY n DESC, e.comm LIMIT 10",
    ) * 3,
    "minute buckets": (
        "SELECT date_trunc('minute', ts) AS m, count(*) AS n FROM file GROUP BY m ORDER BY m",
    ) * 3,
    "argv list functions": (
        "SELECT array_length(argv) AS argc, count(*) AS n FROM exec WHERE array_has(argv, '-c') OR array_length(argv) > 3 "
        "GROUP BY 1 ORDER BY 1",
        "SELECT len(argv) AS argc, count(*) AS n FROM exec WHERE list_contains(argv, '-c') OR len(argv) > 3 "
        "GROUP BY 1 ORDER BY 1",
        None,
    ),
    "point filter pid": ("SELECT count(*) AS n, sum(bytes_written) AS w FROM file WHERE pid = {pid}",) * 3,
    "point filter path": ("SELECT count(*) AS n FROM file WHERE path = '{path}'",) * 3,
    "broad filter (op = open)": (
        "SELECT path, count(*) AS c, sum(bytes_read) AS r FROM file WHERE op = 'open' "
        "GROUP BY path ORDER BY c DESC, path LIMIT 10",
    ) * 3,
}

DUCK = """
import json, sys, time, duckdb
d, sql = sys.argv[1], sys.argv[2]
duckdb.sql("SET enable_progress_bar = false")
t0 = time.perf_counter()
for t in ("file", "exec"):
    duckdb.sql(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{d}/{t}/**/*.parquet', hive_partitioning=true)")
rows = duckdb.sql(sql).fetchall() if sql else []
t = time.perf_counter() - t0
print(json.dumps([[v for v in r if type(v) is int] for r in rows]))
print(t)
"""

POLARS = """
import json, sys, time, polars as pl
d, sql = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
ctx = pl.SQLContext({t: pl.scan_parquet(f"{d}/{t}/**/*.parquet", hive_partitioning=True) for t in ("file", "exec")})
rows = ctx.execute(sql).collect().rows() if sql else []
t = time.perf_counter() - t0
print(json.dumps([[v for v in r if type(v) is int] for r in rows]))
print(t)
"""


def timed(cmd, inner=False):
    """Wall seconds of the whole process; with `inner`, the seconds it printed last (the
    query alone, timed inside the Python process). Then its answer: the integers of each
    row (capq's CSV cells that parse as integers; the peers print theirs as JSON)."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode not in (0, 3):
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[:500]}")
    if inner:
        answer, seconds = r.stdout.strip().splitlines()[-2:]
        return float(seconds), json.loads(answer)
    return elapsed, [[int(c) for c in row if c.lstrip("-").isdigit()] for row in csv.reader(r.stdout.splitlines()[1:])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capq")
    ap.add_argument("capture")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated query names (default: all)")
    ap.add_argument("--against", metavar="CAPQ", help="another capq build: the two alternate on the set, "
                    "no DuckDB or Polars, and each query's answers must be the same")
    a = ap.parse_args()
    py = sys.executable
    import duckdb
    cap = a.capture
    # The point filters' values, from the data: a busy pid and a common path.
    con = duckdb.connect()
    pid, path = con.sql(
        f"SELECT pid, path FROM read_parquet('{cap}/file/**/*.parquet') WHERE op = 'open' "
        "GROUP BY pid, path ORDER BY count(*) DESC LIMIT 1").fetchall()[0]
    rows = con.sql(f"SELECT count(*) FROM read_parquet('{cap}/*/*/*/*/*.parquet', union_by_name=true)").fetchall()[0][0]
    print(f"capture {cap}: {rows} rows; point filters: pid {pid}, path {path!r}; best of {a.rounds}, whole process")
    only = set(filter(None, a.only.split(",")))
    if a.against:
        return against(a, pid, path, only)
    engines = ("capq", "duckdb", "polars")
    base = {e: min(timed(cmd)[0] for _ in range(a.rounds)) for e, cmd in (
        ("duckdb", [py, "-c", DUCK, cap, ""]), ("polars", [py, "-c", POLARS, cap, ""]))}
    print("capq: the whole process; DuckDB and Polars: the query alone (views, plan, run, fetch), timed in")
    print("their Python process, and in brackets the whole process; ratios against the query alone")
    print(f"{'query':<26} {'capq s':>8} {'duckdb s':>17} {'polars s':>17} {'capq/duckdb':>12} {'capq/polars':>12}")
    print(f"{'python + import (no query)':<26} {'':>8} {base['duckdb']:>17.3f} {base['polars']:>17.3f}")
    ratios_d, ratios_p = [], []
    for name, sqls in QUERIES.items():
        if only and name not in only:
            continue
        sqls = [s.format(pid=pid, path=path.replace("'", "''")) if s else None for s in sqls]
        cmds = {
            "capq": [a.capq, "--dir", cap, "--format", "csv", sqls[0]],
            "duckdb": [py, "-c", DUCK, cap, sqls[1]],
            "polars": [py, "-c", POLARS, cap, sqls[2]] if sqls[2] else None,
        }
        best = {e: math.inf for e in engines}
        inner = {e: math.inf for e in engines}
        answers = {}
        for _ in range(a.rounds):
            for e in engines:
                if not cmds[e]:
                    continue
                if e == "capq":
                    t, answers[e] = timed(cmds[e])
                    best[e] = min(best[e], t)
                else:
                    t0 = time.perf_counter()
                    t, answers[e] = timed(cmds[e], inner=True)
                    inner[e] = min(inner[e], t)
                    best[e] = min(best[e], time.perf_counter() - t0)
        # A peer that answered otherwise (or not at all) gets no ratio: the integers of
        # every row (counts, sums, lengths), in order, must be capq's.
        for e in answers:
            if answers[e] != answers["capq"] or not answers[e]:
                raise SystemExit(f"{name}: {e} answered {answers[e][:3]}..., capq {answers['capq'][:3]}...")
        rd = best["capq"] / inner["duckdb"]
        ratios_d.append(rd)
        rp = best["capq"] / inner["polars"] if cmds["polars"] else None
        if rp:
            ratios_p.append(rp)
        cell = lambda e: f"{inner[e]:>7.3f} ({best[e]:>6.3f})" if cmds[e] else f"{'-':>17}"
        print(f"{name:<26} {best['capq']:>8.3f} {cell('duckdb')} {cell('polars')} {rd:>11.2f}x "
              + (f"{rp:>11.2f}x" if rp else f"{'-':>12}"), flush=True)
    gm = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")
    print(f"{'geometric mean':<26} {'':>8} {'':>17} {'':>17} {gm(ratios_d):>11.2f}x {gm(ratios_p):>11.2f}x")


def against(a, pid, path, only):
    """This capq against another build, alternating, best of --rounds, whole process."""
    print(f"{'query':<26} {'capq s':>8} {'other s':>8} {'capq/other':>11}")
    ratios = []
    for name, sqls in QUERIES.items():
        if only and name not in only:
            continue
        sql = sqls[0].format(pid=pid, path=path.replace("'", "''"))
        best, answers = {}, {}
        for _ in range(a.rounds):
            for b in (a.capq, a.against):
                t0 = time.perf_counter()
                r = subprocess.run([b, "--dir", a.capture, "--format", "csv", sql], capture_output=True)
                best[b] = min(best.get(b, math.inf), time.perf_counter() - t0)
                if r.returncode != 0:
                    raise SystemExit(f"{b} failed ({r.returncode}) on {name}: {r.stderr.decode()[:500]}")
                answers.setdefault(b, r.stdout)
        if answers[a.capq] != answers[a.against]:
            raise SystemExit(f"{name}: the two builds' answers differ")
        ratios.append(best[a.capq] / best[a.against])
        print(f"{name:<26} {best[a.capq]:>8.3f} {best[a.against]:>8.3f} {ratios[-1]:>10.3f}", flush=True)
    print(f"{'geometric mean':<26} {'':>8} {'':>8} {math.exp(sum(map(math.log, ratios)) / len(ratios)):>10.3f}")


if __name__ == "__main__":
    main()
