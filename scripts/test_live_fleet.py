"""Live fleet tests: the recorder uploads to a real S3-compatible server on loopback
(moto's server mode, from PyPI), capq queries the shipped tree over s3://, and Spark and
DuckDB read a multi-host tree.

    test_live_fleet.py RECORDER CAPQ SYNTH_CAPTURE

What is checked, exactly:
- a live capture uploaded with --keep-local: every local segment is in the bucket, byte
  for byte, once (the bucket is versioned: a second PUT of a key would be a second
  version), nothing else is; capq over s3:// gives the same rows as capq over the local
  tree; --since/--until prune over s3://; the stats table's upload row counts them;
- the server stopped mid-run and started again: failures are counted, nothing is lost
  or sent twice, the local copies are gone once uploaded;
- a run that stops while the server is down keeps its segments; the next start uploads
  them, each once;
- credentials and endpoint from the AWS shared files instead of the environment;
- a three-host tree: capq (local and s3://), Spark and DuckDB agree on counts per host and
  a group-by.

The server runs in this process (moto's ThreadedMotoServer): stopping it closes its
listener (connections are refused) while the buckets, which moto keeps in memory, stay.
"""
import glob
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3
from moto.server import ThreadedMotoServer

from livecheck import FAILS, capq, check, finish, start

REC, CAPQ, SYNTH = sys.argv[1], sys.argv[2], sys.argv[3]
WORK = tempfile.mkdtemp(prefix="capture-fleet-")
os.chmod(WORK, 0o750)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = free_port()
ENDPOINT = f"http://127.0.0.1:{PORT}"
AWS = {"AWS_ACCESS_KEY_ID": "fleettest", "AWS_SECRET_ACCESS_KEY": "fleettest", "AWS_REGION": "us-east-1",
       "AWS_ENDPOINT_URL": ENDPOINT}
for k in list(os.environ):
    if k.startswith("AWS_"):
        del os.environ[k]
os.environ.update(AWS)
os.environ["HOME"] = WORK  # no ~/.aws of the machine's

logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=PORT, verbose=False)
server.start()
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                  aws_access_key_id="fleettest", aws_secret_access_key="fleettest")
s3.create_bucket(Bucket="fleet")
s3.put_bucket_versioning(Bucket="fleet", VersioningConfiguration={"Status": "Enabled"})


def versions(prefix):
    """key -> [(size, etag)] of every version under `prefix`."""
    out = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket="fleet", Prefix=prefix + "/"):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"][len(prefix) + 1:], []).append((v["Size"], v["ETag"].strip('"')))
    return out


def local_segments(cap):
    return {os.path.relpath(p, cap): p for p in glob.glob(f"{cap}/*/host=*/dt=*/hr=*/*.parquet")}


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def workload(tag, seconds, between=0.05, during=None):
    """Execs of /bin/true tagged `tag` and a file written per exec, for `seconds`;
    `during(t)` is called with the elapsed time each round. Returns the exec count."""
    n, t0 = 0, time.monotonic()
    while (t := time.monotonic() - t0) < seconds:
        subprocess.run(["/bin/true", tag, str(n)], check=True)
        with open(f"{WORK}/{tag}.out", "a") as f:
            f.write("x" * 10)
        n += 1
        if during:
            during(t)
        time.sleep(between)
    return n


def stop(rec):
    rec.send_signal(signal.SIGINT)
    err = rec.stderr.read()
    rec.wait(timeout=120)
    return err


def q1(cap, sql, env=None):
    return capq(CAPQ, cap, sql)


def rows_csv(cap, sql, *extra):
    out = subprocess.run([CAPQ, "--dir", cap, "--format", "csv", *extra, sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"capq failed ({out.returncode}) over {cap}: {out.stderr.strip()}\n  for: {sql}")
    return out.stdout


def same_rows(what, local, remote):
    for table, order in [("exec", "ts, pid, exec_id"), ("exit", "ts, pid"), ("file", "ts, tid, op, fd"),
                         ("stats", "ts, probe")]:
        sql = f"SELECT * FROM {table} ORDER BY {order}"
        a, b = rows_csv(local, sql), rows_csv(remote, sql)
        check(f"{what}: {table}: capq over s3:// gives the local tree's rows ({a.count(chr(10)) - 1} rows)", b, a)


def exactly_once(what, prefix, want):
    """`want`: rel path -> (size, md5) of every segment that should be in the bucket."""
    got = versions(prefix)
    twice = {k: v for k, v in got.items() if len(v) > 1}
    check(f"{what}: no segment stored twice (one version per key)", twice, {})
    check(f"{what}: the bucket holds exactly the segments, byte for byte ({len(want)})",
          {k: v[-1] for k, v in got.items()}, want)


# 1. A live capture, uploaded with --keep-local.
cap1 = f"{WORK}/one"
rec = start(REC, ["--probes", "exec,file", "-o", cap1, "--upload", "s3://fleet/one", "--keep-local",
                  "--max-segment-age", "1s", "--stats-interval", "1s"])
execs = workload("fleet-one", 4)
err = stop(rec)
print(err.strip().splitlines()[-1])
segs = local_segments(cap1)
check("one: segments published under host=NAME/dt=/hr=", len(segs) > 4 and all("/host=" in k for k in segs), True)
exactly_once("one", "one", {k: (os.path.getsize(p), md5(p)) for k, p in segs.items()})
same_rows("one", cap1, "s3://fleet/one")
got = q1("s3://fleet/one", "SELECT count(*) AS n FROM exec WHERE array_has(argv, 'fleet-one')")[0]["n"]
check("one: every exec of the workload is in the uploaded exec table", got, execs)
got = q1(cap1, "SELECT count(*) AS n FROM exec WHERE host IS NULL OR host = ''")[0]["n"]
check("one: every row has its host", got, 0)
up = q1(cap1, "SELECT sum(upload_segments) AS s, sum(upload_bytes) AS b, max(upload_failures) AS f,"
              " count(*) AS rows FROM stats WHERE probe = 'upload'")[0]
# The last stats row is made when the writers have finished, before the uploader drains
# what they published last: those uploads are in the line at stop, not in the table.
total = sum(os.path.getsize(p) for p in segs.values())
check("one: the stats table's upload rows count uploads as they are confirmed, and no failure",
      (0 < up["s"] < len(segs), 0 < up["b"] < total, up["f"], up["rows"] > 2), (True, True, 0, True))
check("one: the line at stop counts every upload", f"uploaded {len(segs)} segments" in err, True)
ledger = open(f"{cap1}/.uploaded").read().split()
check("one: --keep-local records each upload in .uploaded", sorted(ledger), sorted(segs))
check("one: segments are not world-readable", {oct(os.stat(p).st_mode & 0o007) for p in segs.values()}, {"0o0"})
# Time pruning over s3://: a window before the capture reads nothing and lists no hour.
far = rows_csv("s3://fleet/one", "SELECT count(*) AS n FROM exec", "--until", "2001-01-01")
check("one: --until before the capture reads nothing over s3://", far.split(), ["n", "0"])
recent = q1("s3://fleet/one", "SELECT count(*) AS n FROM exec WHERE array_has(argv, 'fleet-one')")[0]["n"]
check("one: --since 1h over s3:// keeps the capture", int(rows_csv("s3://fleet/one",
      "SELECT count(*) AS n FROM exec WHERE array_has(argv, 'fleet-one')", "--since", "1h").split()[1]), recent)

# 2. The server stops mid-run and comes back: nothing lost, nothing twice, local copies gone.
cap2 = f"{WORK}/two"
rec = start(REC, ["--probes", "exec,file", "-o", cap2, "--upload", "s3://fleet/two", "--max-segment-age", "1s",
                  "--stats-interval", "1s"])
state = {"down": False, "up": False}


def outage(t):
    if t > 2 and not state["down"]:
        server.stop()
        state["down"] = True
        print("server stopped")
    if t > 7 and not state["up"]:
        server.start()
        state["up"] = True
        print("server started again")


execs2 = workload("fleet-two", 11, during=outage)
err = stop(rec)
summary = [line for line in err.splitlines() if "uploaded" in line]
print(summary[-1] if summary else err)
check("two: no segment left locally once uploaded", local_segments(cap2), {})
failed = int(summary[-1].split(" failed attempts")[0].rsplit(" ", 1)[1]) if summary else -1
check("two: the outage was met (failed attempts counted)", failed > 0, True)
got = versions("two")
twice = {k: v for k, v in got.items() if len(v) > 1}
check("two: no segment stored twice", twice, {})
# Every published segment arrived: the stats table counts the segments each probe
# published; the bucket must hold as many, plus the stats table's own.
published = q1("s3://fleet/two", "SELECT sum(segments) AS n FROM stats WHERE probe <> 'upload'")[0]["n"]
data_keys = [k for k in got if not k.startswith("stats/")]
check("two: every published segment is in the bucket", len(data_keys), published)
n = q1("s3://fleet/two", "SELECT count(*) AS n FROM exec WHERE array_has(argv, 'fleet-two')")[0]["n"]
check("two: every exec of the workload is in the bucket, across the outage", n, execs2)
up = q1("s3://fleet/two", "SELECT sum(upload_failures) AS f, max(upload_lag_ms) AS lag FROM stats"
                          " WHERE probe = 'upload'")[0]
check("two: the stats table saw the failures and the lag", (up["f"] > 0, up["lag"] > 1000), (True, True))

# 3. Stopped while the server is down: the segments wait; the next start sends them, once.
cap3 = f"{WORK}/three"
server.stop()
rec = start(REC, ["--probes", "exec", "-o", cap3, "--upload", "s3://fleet/three", "--max-segment-age", "1s",
                  "--upload-drain", "1s"])
execs3 = workload("fleet-three", 3)
err = stop(rec)
waiting = local_segments(cap3)
check("three: with the server down the segments stay local", len(waiting) > 2, True)
check("three: the stop says they wait for the next start", "waiting for the next start" in err, True)
server.start()
# The next start: credentials and endpoint from the shared files this time.
for k in AWS:
    del os.environ[k]
os.makedirs(f"{WORK}/.aws", exist_ok=True)
with open(f"{WORK}/.aws/credentials", "w") as f:
    f.write("[fleet]\naws_access_key_id = fleettest\naws_secret_access_key = fleettest\n")
with open(f"{WORK}/.aws/config", "w") as f:
    f.write(f"[profile fleet]\nregion = us-east-1\nendpoint_url = {ENDPOINT}\n")
os.environ["AWS_PROFILE"] = "fleet"
want3 = {k: (os.path.getsize(p), md5(p)) for k, p in waiting.items()}
rec = start(REC, ["--probes", "exec", "-o", cap3, "--upload", "s3://fleet/three", "--max-segment-age", "1s"])
workload("fleet-three-b", 2)
err = stop(rec)
got = versions("three")
check("three: the waiting segments were uploaded at the next start, each once",
      {k: got.get(k) for k in want3}, {k: [v] for k, v in want3.items()})
check("three: nothing left locally", local_segments(cap3), {})
n = q1("s3://fleet/three", "SELECT count(*) AS n FROM exec WHERE array_has(argv, 'fleet-three')")[0]["n"]
check("three: the first run's execs are all in the bucket", n, execs3)
del os.environ["AWS_PROFILE"]
os.environ.update(AWS)

# 4. A fleet's tree: three hosts, read by capq (local and s3://), Spark and DuckDB.
fleet = f"{WORK}/fleet"
for i, host in enumerate(["web-1", "web-2", "db-1"]):
    subprocess.run([SYNTH, fleet, str(20000 + 5000 * i), str(i + 3), host], check=True, capture_output=True)
for p in glob.glob(f"{fleet}/*/host=*/**/*.parquet", recursive=True):
    s3.upload_file(p, "fleet", "multi/" + os.path.relpath(p, fleet))
by_host = "SELECT host, count(*) AS n FROM file GROUP BY host ORDER BY host"
group = "SELECT host, op, count(*) AS n, sum(bytes_written) AS w FROM file GROUP BY host, op ORDER BY host, op"
capq_local = [rows_csv(fleet, by_host), rows_csv(fleet, group)]
check("fleet: capq reads three hosts", [l.split(",")[0] for l in capq_local[0].split()[1:]], ["db-1", "web-1", "web-2"])
check("fleet: capq over s3:// agrees with the local tree",
      [rows_csv("s3://fleet/multi", by_host), rows_csv("s3://fleet/multi", group)], capq_local)

import duckdb  # noqa: E402

con = duckdb.connect()
glob_file = f"{fleet}/file/**/*.parquet"
d1 = con.execute(f"SELECT host, count(*) FROM read_parquet('{glob_file}', hive_partitioning=true) GROUP BY host"
                 " ORDER BY host").fetchall()
d2 = con.execute(f"SELECT host, op, count(*), sum(bytes_written) FROM read_parquet('{glob_file}', "
                 "hive_partitioning=true) GROUP BY host, op ORDER BY host, op").fetchall()


def csv_rows(text):
    def value(x):
        return None if x == "" else int(x) if x.lstrip("-").isdigit() else x
    return [tuple(value(x) for x in line.split(",")) for line in text.split()[1:]]


check("fleet: DuckDB (hive partitions) agrees with capq on counts per host", d1, csv_rows(capq_local[0]))
check("fleet: DuckDB agrees with capq on a group-by", d2, csv_rows(capq_local[1]))

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
from pyspark.sql import SparkSession  # noqa: E402

spark = (SparkSession.builder.master("local[2]").appName("capture-fleet")
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "4")
         .config("spark.sql.session.timeZone", "UTC").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark.read.parquet(f"{fleet}/file").createOrReplaceTempView("file")
s1 = [tuple(r) for r in spark.sql(by_host).collect()]
s2 = [tuple(r) for r in spark.sql(group).collect()]
spark.stop()
check("fleet: Spark (hive partitions) agrees with capq on counts per host", s1, csv_rows(capq_local[0]))
check("fleet: Spark agrees with capq on a group-by", s2, csv_rows(capq_local[1]))

server.stop()
finish("fleet", WORK)
