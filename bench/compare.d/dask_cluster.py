"""Dask side of bench/compare: a LocalCluster of 2 worker processes (one
thread each) on a loopback port; prints its address, runs until stdin closes."""
import sys

from distributed import LocalCluster

if __name__ == "__main__":
    port = int(sys.argv[1])
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", scheduler_port=port, dashboard_address=None)
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()
    cluster.close()
