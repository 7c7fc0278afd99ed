#!/usr/bin/python3
"""bench/compare: troupe beside the spawn floor, xargs, Celery and Dask, in
one run, each workload on each system alternately (A B C ... then ... C B A),
medians with min/max and the ratio to the baseline measured in the same run.
Run by bench/compare (which installs and builds first); Debian's python3.

  compare.py BUILD_DIR [--jobs N] [--reps R] [--idle S] [--latency N] [--out DIR]
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

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--jobs", type=int, default=5000)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--idle", type=int, default=60)
ap.add_argument("--latency", type=int, default=200)
ap.add_argument("--noop", type=int, default=100000)
ap.add_argument("--out", default=os.path.join(here, "..", "results"))
args = ap.parse_args()
if args.reps < 3:
    sys.exit("compare: --reps must be at least 3")
build = os.path.abspath(args.build)
work = tempfile.mkdtemp(prefix="troupe-compare-")
REDIS_PORT, DASK_PORT, PG_PORT = 6391, 8791, 55441
pg_dir = os.path.join(tempfile.gettempdir(), "troupe-compare-pg-%d" % os.getpid())
started = []  # (name, Popen): stopped at the end, whatever happens


def start(name, cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    started.append((name, p))
    return p


def stop_all():
    for name, p in reversed(started):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# -- processes' figures ---------------------------------------------------------

def children_of(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
                kids.setdefault(int(stat[1]), []).append(int(d))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def figures(roots):
    """(cpu seconds, rss bytes) of the process trees under `roots`."""
    cpu, rss = 0.0, 0
    for root in roots:
        for pid in children_of(root):
            try:
                stat = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
                cpu += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
                for line in open("/proc/%d/status" % pid):
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
            except OSError:
                pass
    return cpu, rss


class load_watch:
    """Highest RSS and CPU used by `roots` while a workload runs."""

    def __init__(self, roots):
        self.roots, self.peak, self.stop = roots, 0, False
        self.cpu0, _ = figures(roots)
        self.t0 = time.time()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, figures(self.roots)[1])
            time.sleep(0.2)

    def done(self):
        self.stop = True
        self.thread.join()
        cpu1, rss = figures(self.roots)
        return {"cpu_pct": (cpu1 - self.cpu0) / (time.time() - self.t0) * 100,
                "rss_mib": max(self.peak, rss) / 2**20}


# -- the systems ------------------------------------------------------------------

def start_redis():
    p = start("redis", ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", "--daemonize", "no",
                        "--dir", work], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"],
                          capture_output=True, text=True).stdout.strip() == "PONG":
            return p
        time.sleep(0.1)
    sys.exit("compare: redis-server did not start")


def start_celery():
    env = dict(os.environ, PYTHONPATH=here,
               TROUPE_BENCH_REDIS="redis://127.0.0.1:%d" % REDIS_PORT)
    os.environ["TROUPE_BENCH_REDIS"] = env["TROUPE_BENCH_REDIS"]
    log = open(os.path.join(work, "celery.log"), "w")
    p = start("celery", ["/usr/bin/python3", "-m", "celery", "-A", "celery_app", "worker",
                         "--pool", "prefork", "--concurrency", "2", "--without-gossip",
                         "--without-mingle", "--without-heartbeat", "-l", "warning"],
              env=env, cwd=here, stdout=log, stderr=log)
    sys.path.insert(0, here)
    import celery_app
    for _ in range(300):
        try:
            if celery_app.app.control.ping(timeout=0.5):
                return p, celery_app
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit("compare: the Celery worker did not answer (see %s/celery.log)" % work)


def start_dask():
    p = start("dask", ["/usr/bin/python3", os.path.join(here, "dask_cluster.py"),
                       str(DASK_PORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=open(os.path.join(work, "dask.log"), "w"), text=True)
    addr = p.stdout.readline().strip()
    if not addr:
        sys.exit("compare: the Dask cluster did not start (see %s/dask.log)" % work)
    from distributed import Client
    return p, Client(addr)


def start_coordinator():
    pipes = os.path.join(work, "pipes")
    os.makedirs(pipes, exist_ok=True)
    open(os.path.join(pipes, "true.yaml"), "w").write(
        'name: true-job\nstages:\n  - name: job\n    run: ["/bin/true"]\n')
    out = open(os.path.join(work, "co.out"), "w+")
    p = start("coordinator", [os.path.join(build, "troupe"), "coordinator", "--pipelines", pipes,
                              "-o", os.path.join(work, "co"), "--max-running", "2",
                              "--listen", "127.0.0.1:0"],
              stdout=out, stderr=open(os.path.join(work, "co.err"), "w"))
    for _ in range(400):
        out.seek(0)
        m = re.search(r"listening on http://127.0.0.1:(\d+)", out.read())
        if m:
            return p, int(m.group(1))
        time.sleep(0.05)
    sys.exit("compare: the coordinator did not start")


def api(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


def api_wait(port, run_id):
    while True:
        st, run = api(port, "GET", "/api/runs/" + run_id)
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.005)


def ms_of(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp() * 1000


# -- workloads --------------------------------------------------------------------

def jobs_floor(n):
    return float(subprocess.run([os.path.join(build, "bench", "spawn_floor"), str(n), "2",
                                 "/bin/true"], capture_output=True, text=True, check=True).stdout)


def jobs_xargs(n):
    t0 = time.time()
    subprocess.run("seq %d | xargs -P 2 -n 1 /bin/true" % n, shell=True, check=True)
    return time.time() - t0


def jobs_celery(n, celery_app):
    t0 = time.time()
    results = [celery_app.run.apply_async(("/bin/true",)) for _ in range(n)]
    assert all(r.get(timeout=600) == 0 for r in results)
    return time.time() - t0


def jobs_dask(n, client):
    t0 = time.time()
    futs = client.map(subprocess.call, [["/bin/true"]] * n, pure=False)
    assert all(code == 0 for code in client.gather(futs))
    return time.time() - t0


def jobs_embedded(n):
    folder = tempfile.mkdtemp(dir=work)
    r = subprocess.run([os.path.join(build, "bench", "embedded_bench"), "throughput", str(n), "2",
                        folder, "/bin/true"], capture_output=True, text=True)
    shutil.rmtree(folder, ignore_errors=True)
    if r.returncode != 0:
        sys.exit("compare: embedded_bench failed: " + r.stderr)
    return float(r.stdout)


def jobs_coordinator(n, port):
    ids, lock = [], threading.Lock()

    def poster(k):
        for _ in range(k):
            st, made = api(port, "POST", "/api/runs", {"pipeline": "true-job"})
            assert st == 201, made
            with lock:
                ids.append(made["id"])

    t0 = time.time()
    threads = [threading.Thread(target=poster, args=(n // 4 + (1 if i < n % 4 else 0),))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in ids:
        assert api_wait(port, i)["status"] == "succeeded"
    return time.time() - t0


def noop_celery(n, celery_app):
    t0 = time.time()
    results = [celery_app.noop.apply_async() for _ in range(n)]
    for r in results:
        r.get(timeout=600)
    return time.time() - t0


def noop_dask(n, client):
    t0 = time.time()
    client.gather(client.map(lambda i: None, range(n), pure=False))
    return time.time() - t0


def noop_troupe(n, db=None):
    folder = tempfile.mkdtemp(dir=work)
    env = dict(os.environ, TROUPE_BENCH_DB=db or "")
    r = subprocess.run([os.path.join(build, "bench", "embedded_bench"), "throughput", str(n), "64",
                        folder, "noop-store"], capture_output=True, text=True, env=env)
    shutil.rmtree(folder, ignore_errors=True)
    if r.returncode != 0:
        sys.exit("compare: embedded_bench failed: " + r.stderr)
    return float(r.stdout)


def start_pg():
    script = os.path.join(here, "..", "..", "tests", "support", "pg_server.sh")
    subprocess.run(["bash", script, "start", pg_dir, str(PG_PORT)], check=True,
                   stdout=subprocess.DEVNULL)
    return open(os.path.join(pg_dir, "url")).read().strip()


def stop_pg():
    script = os.path.join(here, "..", "..", "tests", "support", "pg_server.sh")
    subprocess.run(["bash", script, "stop", pg_dir], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def latency_celery(n, celery_app):
    xs = []
    for _ in range(n):
        t0 = time.time()
        ts = celery_app.started.apply_async().get(timeout=60)
        xs.append((ts - t0) * 1000)
    return xs


def latency_dask(n, client):
    xs = []
    for _ in range(n):
        t0 = time.time()
        ts = client.submit(time.time, pure=False).result()
        xs.append((ts - t0) * 1000)
    return xs


def latency_embedded(n):
    folder = tempfile.mkdtemp(dir=work)
    r = subprocess.run([os.path.join(build, "bench", "embedded_bench"), "latency", str(n), folder,
                        "/bin/true"], capture_output=True, text=True, check=True)
    shutil.rmtree(folder, ignore_errors=True)
    p50, p99 = map(float, r.stdout.split())
    return p50, p99


def latency_api(n, port):
    xs = []
    for _ in range(n):
        t0 = time.time() * 1000
        st, made = api(port, "POST", "/api/runs", {"pipeline": "true-job"})
        run = api_wait(port, made["id"])
        xs.append(ms_of(run["jobs"][0]["attempts"][0]["started_at"]) - t0)
    return xs


def running_order(reps):
    """troupe run of 200 `true` stages against the same from a shell loop."""
    pipe = os.path.join(work, "p200.yaml")
    with open(pipe, "w") as f:
        f.write("name: bench-200\nstages:\n")
        for i in range(200):
            f.write('  - name: s%03d\n    run: ["true"]\n' % i)
    shell, troupe = [], []
    for rep in range(reps):
        for which in (["shell", "troupe"] if rep % 2 == 0 else ["troupe", "shell"]):
            t0 = time.time()
            if which == "shell":
                subprocess.run(["sh", "-c", "for i in $(seq 200); do /bin/true; done"], check=True)
                shell.append(time.time() - t0)
            else:
                subprocess.run([os.path.join(build, "troupe"), "run", pipe, "-o",
                                os.path.join(work, "ro")], check=True, stdout=subprocess.DEVNULL)
                troupe.append(time.time() - t0)
    s, t = statistics.median(shell), statistics.median(troupe)
    out = {"shell_s": s, "troupe_s": t, "per_stage_ms": (t - s) / 200 * 1000, "ratio": t / s}
    # The fsync floor of this disk: 1 KiB written and fsynced, 200 times.
    probe = os.path.join(work, "fsync-probe")
    times = []
    with open(probe, "wb") as f:
        for _ in range(200):
            t0 = time.perf_counter()
            f.write(b"x" * 1024)
            f.flush()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - t0)
    os.unlink(probe)
    out["fsync_floor_ms"] = statistics.median(times) * 1000
    # How many a stage makes (logs, metadata.json, trace, store): strace, if here.
    if shutil.which("strace"):
        r = subprocess.run(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o",
                            os.path.join(work, "strace.txt"), os.path.join(build, "troupe"), "run",
                            pipe, "-o", os.path.join(work, "ro")], stdout=subprocess.DEVNULL)
        calls = 0
        with open(os.path.join(work, "strace.txt")) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[-1] in ("fsync", "fdatasync"):
                    calls += int(parts[3])
        out["fsyncs_per_stage"] = calls / 200
        out["above_fsync_floor_ms"] = out["per_stage_ms"] - out["fsyncs_per_stage"] * out["fsync_floor_ms"]
    return out


def sampler_cost():
    """troupe's own CPU on a 5 s stage of 50 processes, sampled at 10 Hz and not."""
    pipe = os.path.join(work, "p50.yaml")
    with open(pipe, "w") as f:
        f.write('name: bench-50\nstages:\n  - name: s\n    shell: "for i in $(seq 49); do '
                'sleep 5 & done; sleep 5; wait"\n')
    cpu = {}
    for interval in ("100ms", "0"):
        t0 = os.times()
        subprocess.run([os.path.join(build, "troupe"), "run", pipe, "-o", os.path.join(work, "so"),
                        "--no-db", "--sample-interval", interval], check=True,
                       stdout=subprocess.DEVNULL)
        t1 = os.times()
        # troupe's own: its children's CPU minus the stage's (50 sleeps: near 0)
        cpu[interval] = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
    return {"sampled_cpu_s": cpu["100ms"], "unsampled_cpu_s": cpu["0"],
            "sampler_pct_of_core": (cpu["100ms"] - cpu["0"]) / 5 * 100}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# -- the run ----------------------------------------------------------------------

results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": os.uname().nodename,
           "cpus": os.cpu_count(), "jobs": args.jobs, "reps": args.reps, "workloads": {}}
try:
    redis = start_redis()
    celery_proc, celery_app = start_celery()
    dask_proc, dask_client = start_dask()
    co_proc, co_port = start_coordinator()
    roots = {"celery": [celery_proc.pid, redis.pid], "dask": [dask_proc.pid],
             "troupe coordinator": [co_proc.pid]}
    n = args.jobs
    systems = [
        ("spawn floor (posix_spawn)", lambda: jobs_floor(n), None),
        ("xargs -P2", lambda: jobs_xargs(n), None),
        ("Celery (prefork 2, Redis)", lambda: jobs_celery(n, celery_app), "celery"),
        ("Dask LocalCluster (2 procs)", lambda: jobs_dask(n, dask_client), "dask"),
        ("troupe embedded (SQLite)", lambda: jobs_embedded(n), None),
        ("troupe coordinator, local node (API)", lambda: jobs_coordinator(n, co_port),
         "troupe coordinator"),
    ]
    times = {name: [] for name, _, _ in systems}
    loaded = {}
    for rep in range(args.reps):
        order = systems if rep % 2 == 0 else list(reversed(systems))
        for name, fn, root in order:
            watch = load_watch(roots[root]) if root and rep == 0 else None
            times[name].append(fn())
            if watch:
                loaded[root] = watch.done()
            print("  rep %d  %-40s %7.2f s" % (rep + 1, name, times[name][-1]), flush=True)
    floor = statistics.median(times[systems[0][0]])
    rows = []
    for name, _, _ in systems:
        med = statistics.median(times[name])
        rows.append({"system": name, "median_s": med, "min_s": min(times[name]),
                     "max_s": max(times[name]), "jobs_per_s": n / med,
                     "ratio_to_floor": (n / med) / (n / floor)})
    results["workloads"]["subprocess_jobs"] = rows

    # No-op jobs, persisted: Celery keeps each result in Redis, Dask only in
    # memory; troupe's are runs of a one-noop-stage pipeline with
    # `artifacts: store` (run, job, attempt and events in the store), 64 in flight.
    pg_url = start_pg()
    m = args.noop
    noops = [
        ("Celery (results in Redis)", lambda: noop_celery(m, celery_app)),
        ("Dask (results in memory)", lambda: noop_dask(m, dask_client)),
        ("troupe embedded (SQLite)", lambda: noop_troupe(m)),
        ("troupe embedded (PostgreSQL)", lambda: noop_troupe(m, pg_url)),
    ]
    ntimes = {name: [] for name, _ in noops}
    for rep in range(args.reps):
        for name, fn in (noops if rep % 2 == 0 else list(reversed(noops))):
            ntimes[name].append(fn())
            print("  rep %d  %-40s %7.2f s" % (rep + 1, name, ntimes[name][-1]), flush=True)
    stop_pg()
    base = statistics.median(ntimes[noops[0][0]])
    results["workloads"]["noop_jobs"] = [
        {"system": name, "median_s": statistics.median(ntimes[name]), "min_s": min(ntimes[name]),
         "max_s": max(ntimes[name]), "jobs_per_s": m / statistics.median(ntimes[name]),
         "ratio_to_celery": base / statistics.median(ntimes[name])} for name, _ in noops]

    lat = {}
    m = args.latency
    for rep in range(2):
        for name in (["celery", "dask", "embedded", "api"] if rep == 0
                     else ["api", "embedded", "dask", "celery"]):
            if name == "celery":
                xs = latency_celery(m, celery_app)
                lat.setdefault("Celery apply_async -> task start", []).append((pct(xs, 50), pct(xs, 99)))
            elif name == "dask":
                xs = latency_dask(m, dask_client)
                lat.setdefault("Dask submit -> task start", []).append((pct(xs, 50), pct(xs, 99)))
            elif name == "embedded":
                lat.setdefault("troupe in-process (scheduler actor)", []).append(latency_embedded(m))
            else:
                xs = latency_api(m, co_port)
                lat.setdefault("troupe through the HTTP API", []).append((pct(xs, 50), pct(xs, 99)))
    results["workloads"]["launch_latency_ms"] = [
        {"system": k, "p50": statistics.median(a for a, _ in v), "p99": statistics.median(b for _, b in v),
         "runs": [list(x) for x in v]} for k, v in lat.items()]

    results["workloads"]["running_order_200_true"] = running_order(args.reps)
    results["workloads"]["sampler_10hz_50_processes"] = sampler_cost()
    time.sleep(2)
    idle = {}
    before = {k: figures(v) for k, v in roots.items()}
    time.sleep(args.idle)
    for k, v in roots.items():
        cpu, rss = figures(v)
        idle[k] = {"cpu_pct": (cpu - before[k][0]) / args.idle * 100, "rss_mib": rss / 2**20}
    results["workloads"]["resources"] = [
        {"system": k, "idle_seconds": args.idle, "idle_cpu_pct": idle[k]["cpu_pct"],
         "idle_rss_mib": idle[k]["rss_mib"], "loaded_cpu_pct": loaded.get(k, {}).get("cpu_pct"),
         "loaded_rss_mib": loaded.get(k, {}).get("rss_mib")} for k in roots]
finally:
    stop_pg()
    if "dask_client" in globals():
        dask_client.close()
    stop_all()
    shutil.rmtree(work, ignore_errors=True)

# -- targets and the report -------------------------------------------------------

by = {r["system"]: r for r in results["workloads"]["subprocess_jobs"]}
lat = {r["system"]: r for r in results["workloads"]["launch_latency_ms"]}
res = {r["system"]: r for r in results["workloads"]["resources"]}
emb, coord = by["troupe embedded (SQLite)"], by["troupe coordinator, local node (API)"]
inproc, viaapi = lat["troupe in-process (scheduler actor)"], lat["troupe through the HTTP API"]
co = res["troupe coordinator"]
nby = {r["system"]: r for r in results["workloads"].get("noop_jobs", [])}
ro = results["workloads"]["running_order_200_true"]
sam = results["workloads"]["sampler_10hz_50_processes"]
targets = [
    ("running order: per-stage overhead <= 2 ms beyond the spawn", "%.2f ms" % ro["per_stage_ms"],
     ro["per_stage_ms"] <= 2),
] + ([("running order: the same above its fsyncs (%.1f a stage at %.3f ms) <= 2 ms" % (
          ro["fsyncs_per_stage"], ro["fsync_floor_ms"]), "%.2f ms" % ro["above_fsync_floor_ms"],
         ro["above_fsync_floor_ms"] <= 2)] if "above_fsync_floor_ms" in ro else []) + [
    ("sampler at 10 Hz <= 1% of a core", "%.2f %%" % sam["sampler_pct_of_core"],
     sam["sampler_pct_of_core"] <= 1),
    ("persisted no-op jobs >= 50,000/s on SQLite", "%.0f/s" % nby["troupe embedded (SQLite)"]["jobs_per_s"],
     nby["troupe embedded (SQLite)"]["jobs_per_s"] >= 50000),
    ("subprocess jobs >= 0.9x the floor (embedded)", "%.2fx" % emb["ratio_to_floor"], emb["ratio_to_floor"] >= 0.9),
    ("subprocess jobs >= 0.9x the floor (coordinator)", "%.2fx" % coord["ratio_to_floor"], coord["ratio_to_floor"] >= 0.9),
    ("launch -> start p50 <= 0.3 ms in-process", "%.2f ms" % inproc["p50"], inproc["p50"] <= 0.3),
    ("launch -> start p99 <= 1 ms in-process", "%.2f ms" % inproc["p99"], inproc["p99"] <= 1),
    ("launch -> start p99 <= 3 ms through the API", "%.2f ms" % viaapi["p99"], viaapi["p99"] <= 3),
    ("idle coordinator <= 20 MB RSS", "%.1f MiB" % co["idle_rss_mib"], co["idle_rss_mib"] * 2**20 <= 20e6),
    ("idle coordinator <= 0.5% of a core", "%.2f %%" % co["idle_cpu_pct"], co["idle_cpu_pct"] <= 0.5),
]
results["targets"] = [{"target": t, "figure": f, "met": m} for t, f, m in targets]

md = ["# bench/compare, %s, %s (%d CPUs)" % (results["date"], results["host"], results["cpus"]), "",
      "## %d `/bin/true` jobs, 2 in flight (%d repetitions, alternating order)" % (args.jobs, args.reps), "",
      "| system | median | min | max | jobs/s | ratio to the floor |", "|---|---|---|---|---|---|"]
for r in results["workloads"]["subprocess_jobs"]:
    md.append("| %s | %.2f s | %.2f s | %.2f s | %.0f | %.2f |" % (
        r["system"], r["median_s"], r["min_s"], r["max_s"], r["jobs_per_s"], r["ratio_to_floor"]))
md += ["", "## %d no-op jobs, persisted (%d repetitions)" % (args.noop, args.reps), "",
       "| system | median | min | max | jobs/s | ratio to Celery |", "|---|---|---|---|---|---|"]
for r in results["workloads"]["noop_jobs"]:
    md.append("| %s | %.2f s | %.2f s | %.2f s | %.0f | %.2f |" % (
        r["system"], r["median_s"], r["min_s"], r["max_s"], r["jobs_per_s"], r["ratio_to_celery"]))
md += ["", "## Launch -> first stage start, %d sequential single-job runs (median of 2 rounds)" % args.latency,
       "", "| system | p50 | p99 |", "|---|---|---|"]
for r in results["workloads"]["launch_latency_ms"]:
    md.append("| %s | %.2f ms | %.2f ms |" % (r["system"], r["p50"], r["p99"]))
md += ["", "## Running order: 200 `true` stages (median of %d)" % args.reps, "",
       "| shell loop | troupe run | per stage beyond the shell | ratio | fsync floor | fsyncs a stage | beyond them |",
       "|---|---|---|---|---|---|---|",
       "| %.3f s | %.3f s | %.2f ms | %.1fx | %.3f ms | %s | %s |" % (
           ro["shell_s"], ro["troupe_s"], ro["per_stage_ms"], ro["ratio"], ro["fsync_floor_ms"],
           "%.1f" % ro["fsyncs_per_stage"] if "fsyncs_per_stage" in ro else "(no strace)",
           "%.2f ms" % ro["above_fsync_floor_ms"] if "above_fsync_floor_ms" in ro else "-"),
       "", "## Sampler: a 5 s stage of 50 processes", "",
       "| troupe CPU, 10 Hz | troupe CPU, no samples | sampler cost |", "|---|---|---|",
       "| %.3f s | %.3f s | %.2f %% of a core |" % (sam["sampled_cpu_s"], sam["unsampled_cpu_s"],
                                                  sam["sampler_pct_of_core"])]
md += ["", "## Resources of every process of each system", "",
       "| system | idle CPU (%d s) | idle RSS | loaded CPU | loaded peak RSS |" % args.idle, "|---|---|---|---|---|"]
for r in results["workloads"]["resources"]:
    md.append("| %s | %.2f %% | %.1f MiB | %s | %s |" % (
        r["system"], r["idle_cpu_pct"], r["idle_rss_mib"],
        "-" if r["loaded_cpu_pct"] is None else "%.0f %%" % r["loaded_cpu_pct"],
        "-" if r["loaded_rss_mib"] is None else "%.1f MiB" % r["loaded_rss_mib"]))
md += ["", "## Targets", "", "| target | figure | met |", "|---|---|---|"]
for t in results["targets"]:
    md.append("| %s | %s | %s |" % (t["target"], t["figure"], "yes" if t["met"] else "**no**"))
text = "\n".join(md) + "\n"
os.makedirs(args.out, exist_ok=True)
open(os.path.join(args.out, "compare.md"), "w").write(text)
json.dump(results, open(os.path.join(args.out, "compare.json"), "w"), indent=2)
print(text)
print("written: %s/compare.md and compare.json" % os.path.abspath(args.out))
