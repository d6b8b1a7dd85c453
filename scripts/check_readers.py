#!/usr/bin/env python3
"""Reads a capture tree with DuckDB, pyarrow, pandas and Polars, each as it comes (no
options: hive partitions are found by the readers themselves), and checks that every
table has the same rows and values as `capq` gives.

usage: check_readers.py CAPTURE_DIR CAPQ_BINARY
"""
import datetime as dt
import json
import math
import subprocess
import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

TABLES = {
    # table: (order by, columns compared)
    "exec": ("ktime_ns, pid", ["ts", "ktime_ns", "pid", "ppid", "uid", "comm", "exec_id", "parent_exec_id", "path", "argv", "envp", "argv_truncated", "loginuid", "tty"]),
    "exit": ("ktime_ns, pid", ["ts", "ktime_ns", "pid", "exec_id", "exit_code", "signal", "core_dumped", "lifetime_ns"]),
    "file": ("ktime_ns, pid", ["ts", "ktime_ns", "pid", "tid", "comm", "op", "path", "abs_path", "path2", "flags", "fd", "ret", "bytes_read", "bytes_written", "reads", "ino", "dev", "file_id", "closed_by", "length"]),
    "net": ("ktime_ns, pid", ["ts", "ktime_ns", "pid", "family", "proto", "direction", "saddr", "sport", "daddr", "dport", "bytes_sent", "bytes_recv", "duration_ns"]),
    "dns": ("ktime_ns, pid", ["ts", "ktime_ns", "pid", "txid", "is_response", "qname", "qtype", "rcode", "answers", "latency_ns", "msg_truncated"]),
    "module": ("ktime_ns, pid", ["ts", "ktime_ns", "pid", "op", "syscall", "name", "path", "params", "flags", "ret", "error", "loaded", "taint", "image_bytes"]),
    "stats": ("ts, probe", ["ts", "interval_ms", "probe", "events", "dropped_backpressure", "malformed", "rows_written"]),
}

# Nullable integer columns whose values pass 2^53: pandas' default reads them as float64
# and loses their low bits (file_id: the run's start time in Unix seconds shifted left 24
# bits, about 3e16). Users read them with dtype_backend="numpy_nullable" (README), as the
# `pandas-nullable` reader does; plain `pandas` is compared without them.
LOSSY = {"file": ("file_id",)}

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def norm(v):
    """One representation per value: timestamps as µs since the epoch, lists as lists."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        if v is pd.NaT:
            return None
        return v.value // 1000
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        d = v - EPOCH
        return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    if hasattr(v, "tolist"):
        return norm(v.tolist())
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, str)):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def rows_of(records, cols):
    return [tuple(norm(r[c]) for c in cols) for r in records]


def capq_rows(capq, capture, table, order, cols):
    q = f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}"
    out = subprocess.run([capq, "--dir", capture, "--format", "json", q], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        r = json.loads(line)
        if r.get("ts") is not None:
            r["ts"] = norm(dt.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")))
        rows.append(r)
    return rows_of(rows, cols)


def sort_key(order, cols):
    keys = [k.strip() for k in order.split(",")]
    idx = [cols.index(k) for k in keys]
    return lambda row: tuple(row[i] for i in idx)


def main():
    capture, capq = sys.argv[1], sys.argv[2]
    failures = 0
    for table, (order, cols) in TABLES.items():
        want = capq_rows(capq, capture, table, order, cols)
        key = sort_key(order, cols)
        readers = {
            "duckdb": lambda: duckdb.sql(f"SELECT * FROM '{capture}/{table}/**/*.parquet'").to_arrow_table().to_pylist(),
            "pyarrow": lambda: pq.read_table(f"{capture}/{table}").to_pylist(),
            "pandas": lambda: pd.read_parquet(f"{capture}/{table}").to_dict("records"),
            # Its nullable integers as integers (by default they become float64, exact only
            # below 2^53: see LOSSY).
            "pandas-nullable": lambda: pd.read_parquet(f"{capture}/{table}", dtype_backend="numpy_nullable")
            .to_dict("records"),
            "polars": lambda: pl.read_parquet(f"{capture}/{table}/**/*.parquet").to_dicts(),
        }
        for name, read in readers.items():
            got = sorted(rows_of(read(), cols), key=key)
            if name == "pandas":
                # Compared where pandas' default keeps them: not the lossy columns.
                keep = [i for i, c in enumerate(cols) if c not in LOSSY.get(table, ())]
                got, want_here = [[r[i] for i in keep] for r in got], [[r[i] for i in keep] for r in want]
            else:
                want_here = want
            if got != want_here:
                failures += 1
                diff = next((i for i, (a, b) in enumerate(zip(got, want_here)) if a != b), min(len(got), len(want)))
                print(f"FAIL {name:8} {table:7} {len(got)} rows vs capq {len(want)}; first difference at row {diff}:")
                print(f"    {name}: {got[diff] if diff < len(got) else None}")
                print(f"    capq:  {want_here[diff] if diff < len(want_here) else None}")
            else:
                ncols = len(got[0]) if got else len(cols)
                print(f"ok   {name:8} {table:7} {len(got)} rows, {ncols} columns equal to capq")
        # The hive partitions are visible to a reader that wants them.
        parts = duckdb.sql(f"SELECT DISTINCT host, dt, hr FROM '{capture}/{table}/**/*.parquet'").fetchall()
        hosts = sorted(h for (h,) in duckdb.sql(f"SELECT DISTINCT host FROM '{capture}/{table}/**/*.parquet'").fetchall())
        capq_hosts = sorted(r.split(",")[0] for r in subprocess.run(
            [capq, "--dir", capture, "--format", "csv", f"SELECT DISTINCT host FROM {table}"],
            capture_output=True, text=True, check=True).stdout.split()[1:])
        if want and (not parts or hosts != capq_hosts):
            failures += 1
            print(f"FAIL duckdb   {table:7} host/dt/hr partitions {parts[:3]}, hosts {hosts} vs capq's {capq_hosts}")
        else:
            print(f"ok   duckdb   {table:7} host, dt, hr partitions; hosts {hosts} as capq's")
    if failures:
        print(f"{failures} reader checks failed")
        sys.exit(1)
    print("all readers agree with capq")


if __name__ == "__main__":
    main()
