#!/usr/bin/env python3
"""The coordinator's figures for docs/benchmarks.md, each beside a baseline
taken in the same run:

  1. launch -> first-stage-start latency, p50/p99, over N sequential launches
     of a one-stage `true` pipeline: through the API (the client's clock from
     just before the POST to the attempt's recorded start) and in-process (the
     store's created_at to the attempt's start); baseline: starting `true`
     from Python (fork+exec+wait), the floor of any launcher.
  2. launches per second through the API: 4 client threads posting, then
     waiting for every run to end; baseline: the same number of `true`
     processes started one after another from Python.
  3. the coordinator's RSS and CPU idle (10 s) and with 200 active runs of a
     sleeping stage (the last 5 s of them).

  bench/coordinator_bench.py BUILD_DIR [--db postgresql://...] [--runs N]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--db", default="")
ap.add_argument("--runs", type=int, default=200)
args = ap.parse_args()

work = tempfile.mkdtemp(prefix="troupe-cobench-")
pipes = os.path.join(work, "pipes")
os.mkdir(pipes)
open(os.path.join(pipes, "one.yaml"), "w").write(
    'name: one\nstages:\n  - name: t\n    run: ["true"]\n')
open(os.path.join(pipes, "sleepy.yaml"), "w").write(
    'name: sleepy\nstages:\n  - name: s\n    run: ["sleep", "30"]\n')

cmd = [os.path.join(args.build, "troupe"), "coordinator", "--pipelines", pipes, "-o",
       os.path.join(work, "out"), "--listen", "127.0.0.1:0"]
if args.db:
    cmd += ["--db", args.db]
log = open(os.path.join(work, "co.err"), "w")
out = open(os.path.join(work, "co.out"), "w+")
co = subprocess.Popen(cmd, stdout=out, stderr=log)
port = None
for _ in range(400):
    out.seek(0)
    m = re.search(r"listening on http://127.0.0.1:(\d+)", out.read())
    if m:
        port = int(m.group(1))
        break
    time.sleep(0.05)
if port is None:
    sys.exit("the coordinator did not start")


def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def ms(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp() * 1000


def wait_end(run_id):
    while True:
        st, run = call("GET", "/api/runs/" + run_id)
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.01)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def proc_figures(pid):
    stat = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    threads = len(os.listdir("/proc/%d/task" % pid))
    return cpu, rss, threads


try:
    n = args.runs
    # 1. latency
    floor = []
    for _ in range(n):
        t0 = time.time()
        subprocess.run(["true"])
        floor.append((time.time() - t0) * 1000)
    api_lat, inproc_lat = [], []
    for _ in range(n):
        t0 = time.time() * 1000
        st, made = call("POST", "/api/runs", {"pipeline": "one"})
        assert st == 201, made
        run = wait_end(made["id"])
        start = ms(run["jobs"][0]["attempts"][0]["started_at"])
        api_lat.append(start - t0)
        inproc_lat.append(start - ms(run["created_at"]))
    # 2. throughput
    ids, lock = [], threading.Lock()

    def poster(k):
        for _ in range(k):
            st, made = call("POST", "/api/runs", {"pipeline": "one"})
            with lock:
                ids.append(made["id"])

    t0 = time.time()
    threads = [threading.Thread(target=poster, args=(n // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posted = time.time() - t0
    for i in ids:
        wait_end(i)
    ended = time.time() - t0
    t0 = time.time()
    for _ in range(len(ids)):
        subprocess.run(["true"])
    floor_rate = len(ids) / (time.time() - t0)
    # 3. idle and 200 active runs
    time.sleep(2)
    c0, _, _ = proc_figures(co.pid)
    time.sleep(10)
    c1, idle_rss, idle_threads = proc_figures(co.pid)
    idle_cpu = (c1 - c0) / 10 * 100
    active = []
    for _ in range(200):
        st, made = call("POST", "/api/runs", {"pipeline": "sleepy"})
        active.append(made["id"])
    while True:
        st, page = call("GET", "/api/runs?status=running&limit=1000")
        if len(page["runs"]) >= 200:
            break
        time.sleep(0.2)
    time.sleep(2)
    c0, _, _ = proc_figures(co.pid)
    time.sleep(5)
    c1, busy_rss, busy_threads = proc_figures(co.pid)
    busy_cpu = (c1 - c0) / 5 * 100
    for i in active:
        call("POST", "/api/runs/%s/cancel" % i)
    for i in active:
        wait_end(i)

    store = "PostgreSQL" if args.db else "SQLite"
    print("store: %s; %d launches each; %s" % (store, n, time.strftime("%Y-%m-%d")))
    print("launch -> first stage start, ms   p50     p99")
    print("  through the API (client clock)  %6.1f  %6.1f" % (pct(api_lat, 50), pct(api_lat, 99)))
    print("  in-process (created -> start)   %6.1f  %6.1f" % (pct(inproc_lat, 50), pct(inproc_lat, 99)))
    print("  baseline: fork+exec+wait true   %6.1f  %6.1f" % (pct(floor, 50), pct(floor, 99)))
    print("  ratio API p50 / baseline p50    %6.1f" % (pct(api_lat, 50) / pct(floor, 50)))
    print("launches/s through the API: %.0f posted, %.0f run to the end; baseline %.0f `true`/s"
          " (ratio %.2f)" % (len(ids) / posted, len(ids) / ended, floor_rate,
                             (len(ids) / ended) / floor_rate))
    print("coordinator idle: %.2f%% of a core, RSS %.1f MiB, %d threads"
          % (idle_cpu, idle_rss / 2**20, idle_threads))
    print("with 200 running runs: %.2f%% of a core, RSS %.1f MiB, %d threads"
          % (busy_cpu, busy_rss / 2**20, busy_threads))
finally:
    co.send_signal(signal.SIGTERM)
    try:
        co.wait(timeout=30)
    except subprocess.TimeoutExpired:
        co.kill()
    subprocess.run(["pkill", "-f", "sleep 30"], stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)
