#!/usr/bin/env python3
"""The `run --watch` benchmark: lag from an ldapmodify to the store commit, and memory.

    bench/run N --keep && bench/watch.py N [--changes 50] [--bulk 1000] [--batch-window 1s]

Uses what `bench/run N --keep` leaves in bench/work/N: the running slapd, mapping.yaml and
bench.sqlite (synced, with the incremental cache). Starts
`dirbridge run mapping.yaml --watch --apply --store bench.sqlite --every 1h --batch-window W`,
waits until it listens, then:

1. makes --changes single changes, one at a time (a new title for one user), and times each
   from just before `ldapmodify` starts to the moment the new title is readable in the store
   (polled every 5 ms): p50, p95 and the maximum;
2. reads the process's RSS (VmRSS), makes --bulk more changes (ldapmodify batches of 10,
   each waited for), and reads the RSS again: memory must not grow per change.

Prints a table and appends it to bench/results.md with the machine's description. Stops
dirbridge with SIGTERM (it must exit 0). Needs the release build (or DIRBRIDGE_BIN).
"""
import argparse
import datetime
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)


def env_file(path):
    values = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key:
                values[key] = value
    return values


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, p):
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def main():
    ap = argparse.ArgumentParser(description="Time run --watch from ldapmodify to the store commit.")
    ap.add_argument("n", type=int)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--bulk", type=int, default=1000)
    ap.add_argument("--batch-window", default="1s")
    args = ap.parse_args()
    work = os.path.join(BENCH, "work", str(args.n))
    slapd = env_file(os.path.join(work, "slapd", "env"))
    store = os.path.join(work, "bench.sqlite")
    binary = os.environ.get("DIRBRIDGE_BIN", os.path.join(REPO, ".build", "release", "dirbridge"))
    if not os.path.exists(store):
        sys.exit("bench/watch.py: no bench.sqlite: run `bench/run %d --keep` first" % args.n)

    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    dns = [row[0] for row in db.execute(
        "SELECT external_dn FROM client_users WHERE enabled = 1 AND source = 'directory' ORDER BY id LIMIT ?",
        (args.changes + 10,))]
    stamp = datetime.datetime.now(datetime.timezone.utc)
    tag = stamp.strftime("%H%M%S")

    log_path = os.path.join(work, "logs", "watch.err")
    env = dict(os.environ, DIRBRIDGE_URL=slapd["LDAP_URL"], DIRBRIDGE_BIND_PASSWORD=slapd["SYNC_PASSWORD"])
    with open(log_path, "w") as log:
        proc = subprocess.Popen([binary, "run", os.path.join(work, "mapping.yaml"), "--watch", "--apply", "--store", store,
                                 "--every", "1h", "--batch-window", args.batch_window, "--verbose"],
                                stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        deadline = time.time() + 300
        while "watching for changes (RFC 4533" not in open(log_path).read():
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("bench/watch.py: dirbridge did not start watching; see " + log_path)
            time.sleep(0.05)

        def modify(pairs):
            ldif = "".join(f"dn: {dn}\nchangetype: modify\nreplace: title\ntitle: {title}\n\n" for dn, title in pairs)
            subprocess.run(["ldapmodify", "-x", "-H", slapd["LDAP_URL"], "-D", slapd["ROOT_DN"], "-w", slapd["ROOT_PASSWORD"]],
                           input=ldif.encode(), stdout=subprocess.DEVNULL, check=True)

        def landed(dn, title, limit=60):
            end = time.time() + limit
            while time.time() < end:
                row = db.execute("SELECT title FROM client_users WHERE external_dn = ?", (dn,)).fetchone()
                if row and row[0] == title:
                    return time.time()
                time.sleep(0.005)
            sys.exit(f"bench/watch.py: {dn} did not get title {title} within {limit}s; see {log_path}")

        lags = []
        for i in range(args.changes):
            dn, title = dns[i], f"Watched {tag}-{i}"
            start = time.time()
            modify([(dn, title)])
            lags.append(landed(dn, title) - start)

        rss_start = rss_mb(proc.pid)
        done = 0
        while done < args.bulk:
            pairs = [(dns[j % len(dns)], f"Bulk {tag}-{done + k}") for k, j in enumerate(range(done, min(done + 10, args.bulk)))]
            modify(pairs)
            landed(*pairs[-1])
            done += len(pairs)
        rss_after = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)

    p50, p95, worst = percentile(lags, 50), percentile(lags, 95), max(lags)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"## run --watch, N={args.n}, {stamp.strftime('%Y-%m-%d %H:%M')} UTC",
        "",
        f"- git commit: {subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}",
        f"- cpu: {os.cpu_count()} × {platform.processor() or platform.machine()}; load average after: {load}",
        f"- dirbridge: {binary}; `run --watch --apply --batch-window {args.batch_window}`; exit after SIGTERM: {status}",
        f"- {args.changes} single changes, one at a time, each timed from just before `ldapmodify` to the new value in the store",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| lag p50 | {p50:.3f} s | |",
        f"| lag p95 | {p95:.3f} s | ≤ 2 s |",
        f"| lag max | {worst:.3f} s | |",
        f"| RSS after the first {args.changes} changes | {rss_start:.0f} MB | |",
        f"| RSS after {args.bulk} more changes | {rss_after:.0f} MB | flat |",
        "",
    ]
    print("\n".join(lines))
    with open(os.path.join(BENCH, "results.md"), "a") as f:
        f.write("\n" + "\n".join(lines))
    if status != 0:
        sys.exit(f"bench/watch.py: dirbridge exited {status} after SIGTERM")


if __name__ == "__main__":
    main()
