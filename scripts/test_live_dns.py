#!/usr/bin/env python3
"""Live test of the dns probe: a real DNS server and real clients from Debian's packages.

dnsmasq serves a hosts file on 127.0.0.1:53 with no upstream (names under .test it does
not know are NXDOMAIN). While the recorder runs (--probes dns), these ask known names:
dig over UDP and over TCP, dig for AAAA and for an unknown name, `getent hosts` (glibc's
resolver) and Python's socket.getaddrinfo, the last two in a mount namespace whose
/etc/resolv.conf names the local server. Each message must give exactly one row, as the
asking process sees it: a query row and a response row per question, the asking
process named, answers exact, NXDOMAIN for the unknown name, latency set on responses.

usage: test_live_dns.py RECORDER CAPQ        (as root; needs dnsmasq and dig)
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import duckdb

from livecheck import capq, check, check_no_drops, finish



def asked(cmd, resolv=None):
    """Runs `cmd` (in a mount namespace with `resolv` as /etc/resolv.conf when given);
    returns the asking process's pid and its output."""
    script = 'echo $$; exec "$@"'
    if resolv:
        script = f'mount --bind {resolv} /etc/resolv.conf && ' + script
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *cmd]
    else:
        argv = ["sh", "-c", script, "sh", *cmd]
    out = subprocess.run(argv, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    if not lines:
        raise SystemExit(f"{cmd} printed nothing: {out.stderr}")
    return int(lines[0]), "\n".join(lines[1:]), out.returncode


def main():
    recorder, capq_bin = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        raise SystemExit("test_live_dns.py must run as root (it loads BPF programs)")
    for tool in ("dnsmasq", "dig", "unshare"):
        if not shutil.which(tool):
            raise SystemExit(f"test_live_dns.py needs {tool}: apt-get install dnsmasq-base dnsutils util-linux")
    work = tempfile.mkdtemp(prefix="capture-dns-")
    os.chmod(work, 0o755)  # dnsmasq reads the hosts file as nobody
    cap = os.path.join(work, "capture")
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("10.1.2.3 alpha.test\n10.1.2.4 beta.test\nfd00::5 gamma.test\n")
    os.chmod(hosts, 0o644)
    resolv = os.path.join(work, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    os.chmod(resolv, 0o644)
    # glibc over TCP: it sends the A and AAAA queries back to back on one connection.
    resolv_tcp = os.path.join(work, "resolv-tcp.conf")
    with open(resolv_tcp, "w") as f:
        f.write("nameserver 127.0.0.1\noptions use-vc attempts:1 timeout:2\n")
    os.chmod(resolv_tcp, 0o644)

    def dnsmasq(port):
        return subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
                                 "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}", "--local=/test/",
                                 "--local-ttl=300", "--pid-file=", "--log-facility=-"],
                                stderr=subprocess.PIPE, text=True)
    dns = dnsmasq(53)
    dns_alt = dnsmasq(5353)  # a DNS port the recorder learns from --dns-port
    try:
        for _ in range(50):
            if subprocess.run(["dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "alpha.test"],
                              capture_output=True, text=True).stdout.strip() == "10.1.2.3":
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"dnsmasq did not answer: {dns.stderr.read() if dns.poll() is not None else ''}")

        rec = subprocess.Popen([recorder, "--output-dir", cap, "--probes", "dns", "--dns-port", "5353", "--flush-interval", "200ms",
                                "--stats-interval", "1s", "-q"], stderr=subprocess.PIPE, text=True)
        line = rec.stderr.readline()
        if "recording" not in line:
            rec.kill()
            raise SystemExit(f"recorder did not start: {line}{rec.stderr.read()}")
        print(f"recorder pid {rec.pid}: {line.strip()}")

        dig = ["dig", "+time=2", "+tries=1", "@127.0.0.1"]
        udp_pid, udp_out, _ = asked([*dig, "alpha.test", "A", "+short"])
        check("dig A over UDP answered", udp_out, "10.1.2.3")
        tcp_pid, tcp_out, _ = asked([*dig, "+tcp", "beta.test", "A", "+short"])
        check("dig A over TCP answered", tcp_out, "10.1.2.4")
        v6_pid, v6_out, _ = asked([*dig, "gamma.test", "AAAA", "+short"])
        check("dig AAAA answered", v6_out, "fd00::5")
        nx_pid, nx_out, _ = asked([*dig, "nothere.test", "A"])
        check("dig of an unknown name says NXDOMAIN", "status: NXDOMAIN" in nx_out, True)
        getent_pid, getent_out, _ = asked(["getent", "ahostsv4", "alpha.test"], resolv)
        check("getent (glibc) answered", getent_out.split()[:1], ["10.1.2.3"])
        alt_pid, alt_out, _ = asked([*dig, "-p", "5353", "beta.test", "A", "+short"])
        check("dig to port 5353 answered", alt_out, "10.1.2.4")
        vc_pid, vc_out, _ = asked(["getent", "ahosts", "gamma.test"], resolv_tcp)
        check("getent over TCP (use-vc) answered", vc_out.split()[:1], ["fd00::5"])
        py_pid, py_out, _ = asked([sys.executable, "-c",
                                   "import socket; print(socket.getaddrinfo('beta.test', 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])"],
                                  resolv)
        check("Python getaddrinfo answered", py_out, "10.1.2.4")

        time.sleep(0.5)
        rec.send_signal(signal.SIGTERM)
        print(rec.stderr.read().strip())
        check("recorder exits 0 on SIGTERM", rec.wait(timeout=60), 0)
    finally:
        for d in (dns, dns_alt):
            d.terminate()
            d.wait(timeout=10)

    cols = ("pid, comm, proto, is_response, qname, qtype, rcode, answers, latency_ns IS NOT NULL AS timed, "
            "txid, sport, dport, daddr, msg_truncated")

    def rows_of(pid):
        return capq(capq_bin, cap, f"SELECT {cols} FROM dns WHERE pid = {pid} ORDER BY ktime_ns")

    def brief(r):
        return (r["proto"], r["is_response"], r["qname"], r["qtype"], r["rcode"], r["answers"], r["timed"], r["dport"],
                r["daddr"], r["msg_truncated"])

    rows = capq(capq_bin, cap, f"""SELECT qclass, answer_names, answer_types, answer_ttls, msg_len = wire_len AS whole,
            raw IS NULL AS decoded FROM dns WHERE pid = {udp_pid} AND is_response""")
    check("dig over UDP: the answer's owner name, type, TTL (--local-ttl 300) and class; whole and decoded",
          [(r["qclass"], r["answer_names"], r["answer_types"], r["answer_ttls"], r["whole"], r["decoded"]) for r in rows],
          [("IN", ["alpha.test"], ["A"], [300], True, True)])

    for what, pid, proto, name, qtype, rcode, answers in [
        ("dig over UDP", udp_pid, "udp", "alpha.test", "A", "NOERROR", ["10.1.2.3"]),
        ("dig over TCP", tcp_pid, "tcp", "beta.test", "A", "NOERROR", ["10.1.2.4"]),
        ("dig AAAA", v6_pid, "udp", "gamma.test", "AAAA", "NOERROR", ["fd00::5"]),
        ("dig, unknown name", nx_pid, "udp", "nothere.test", "A", "NXDOMAIN", []),
    ]:
        rows = rows_of(pid)
        check(f"{what}: one query row and one response row, exact", [brief(r) for r in rows], [
            (proto, False, name, qtype, None, [], False, 53, "127.0.0.1", False),
            (proto, True, name, qtype, rcode, answers, True, 53, "127.0.0.1", False),
        ])
        # dig sends from a thread of its own (named isc-net-0000 by BIND 9.18): the comm
        # is the sending thread's, the pid dig's.
        check(f"{what}: both rows name the same thread of dig and share the socket and transaction",
              (len({r["comm"] for r in rows}), len({(r["txid"], r["sport"]) for r in rows})), (1, 1))

    python = os.path.basename(sys.executable)[:15]  # comm: the name that was executed
    for what, pid, comm, name, addr in [("getent (glibc)", getent_pid, "getent", "alpha.test", "10.1.2.3"),
                                        ("Python getaddrinfo", py_pid, python, "beta.test", "10.1.2.4")]:
        rows = rows_of(pid)
        queries = [(r["txid"], r["qtype"]) for r in rows if not r["is_response"]]
        responses = [(r["txid"], r["qtype"]) for r in rows if r["is_response"]]
        check(f"{what}: every query has exactly one response, no message twice",
              (sorted(queries), len(set(queries)) == len(queries)), (sorted(responses), True))
        check(f"{what}: the A question answered exactly, by {comm}",
              [(r["comm"], r["qname"], r["rcode"], r["answers"], r["timed"]) for r in rows if r["is_response"] and r["qtype"] == "A"],
              [(comm, name, "NOERROR", [addr], True)])

    rows = rows_of(alt_pid)
    check("--dns-port 5353: dig's query and response there",
          [(r["is_response"], r["qname"], r["dport"], r["answers"]) for r in rows],
          [(False, "beta.test", 5353, []), (True, "beta.test", 5353, ["10.1.2.4"])])
    rows = rows_of(vc_pid)
    queries = sorted((r["qtype"], r["txid"]) for r in rows if not r["is_response"])
    responses = sorted((r["qtype"], r["txid"]) for r in rows if r["is_response"])
    check("glibc over TCP: A and AAAA back to back on one connection, each query and response once",
          ([q for q, _ in queries], queries == responses, {r["proto"] for r in rows}, {r["msg_truncated"] for r in rows}),
          (["A", "AAAA"], True, {"tcp"}, {False}))
    check("glibc over TCP: the AAAA answer", [r["answers"] for r in rows if r["is_response"] and r["qtype"] == "AAAA"],
          [["fd00::5"]])

    rows = capq(capq_bin, cap, "SELECT count(*) AS n FROM dns WHERE comm = 'dnsmasq'")
    check("the server's side is not recorded (no dnsmasq rows)", rows[0]["n"], 0)
    check_no_drops(capq_bin, cap, "dns")
    n_capq = capq(capq_bin, cap, "SELECT count(*) AS n FROM dns")[0]["n"]
    n_duck = duckdb.sql(f"SELECT count(*) FROM '{cap}/dns/**/*.parquet'").fetchall()[0][0]
    check(f"duckdb and capq agree on dns rows ({n_capq})", n_duck, n_capq)

    finish("dns", work)


if __name__ == "__main__":
    main()
