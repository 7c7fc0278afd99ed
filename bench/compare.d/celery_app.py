"""Celery side of bench/compare: Redis broker and backend on a loopback port
of bench/compare's own ($TROUPE_BENCH_REDIS)."""
import os
import subprocess
import time

from celery import Celery

url = os.environ.get("TROUPE_BENCH_REDIS", "redis://127.0.0.1:6391")
app = Celery("troupe_bench", broker=url + "/0", backend=url + "/1")
app.conf.update(task_acks_late=False, worker_prefetch_multiplier=1, result_expires=600,
                broker_connection_retry_on_startup=True)


@app.task
def run(program):
    return subprocess.run([program]).returncode


@app.task
def started():
    return time.time()


@app.task
def noop():
    return None
