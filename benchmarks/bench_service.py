"""Measure the served recommender: latency, throughput, start-up time and memory.

Starts ``bentoml serve`` for the recommender (on the artifacts in ``outputs/`` or
``--artifacts``) and for ``benchmarks/echo_service.py`` on 127.0.0.1, then prints:

- ``/predict`` p50 and p99 latency and throughput with 1 and 8 concurrent clients,
  beside the echo service under the same load, and the predict/echo throughput ratio;
- ``/recommend`` latency for top 10;
- seconds from process start to the first ``/readyz`` 200;
- resident memory (RSS) of each worker process.

Each client is a thread with one keep-alive connection sending requests back to back.
The load generator therefore shares the machine's cores with the servers, and the
ratio compares both services under that same handicap. Run from the repository root::

    python benchmarks/bench_service.py [--artifacts outputs] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from src.cfrec.artifacts import load_artifacts  # noqa: E402

RECOMMENDER = "src.service:CFRecommender"
ECHO = "benchmarks.echo_service:EchoService"
READY_TIMEOUT_SECONDS = 120
WARMUP_REQUESTS = 50
CONCURRENCY_LEVELS = (1, 8)
# Distinct (user, movie) pairs cycled through by the clients, drawn once with a fixed seed.
N_PAIRS = 2_000
SEED = 20240601


# --- servers ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A ``bentoml serve`` process group on 127.0.0.1, started and timed to readiness."""

    def __init__(self, service: str, env: dict[str, str]):
        self.port = free_port()
        command = [sys.executable, "-m", "bentoml", "serve", service, "--host", "127.0.0.1", "--port", str(self.port)]
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ready_seconds = self._wait_until_ready(started)

    def _wait_until_ready(self, started: float) -> float:
        while time.perf_counter() - started < READY_TIMEOUT_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return time.perf_counter() - started
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {READY_TIMEOUT_SECONDS} s")

    def worker_rss_mib(self) -> list[float]:
        """Return the RSS of each worker process (the serving process's Python children)."""
        parent = psutil.Process(self.process.pid)
        workers = [
            child for child in parent.children(recursive=True) if "_bentoml_impl.worker" in " ".join(child.cmdline())
        ]
        return [worker.memory_info().rss / 2**20 for worker in workers]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# --- load ------------------------------------------------------------------------
def run_load(port: int, path: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """Send ``bodies`` in turn from ``clients`` threads for ``seconds``; return latency and throughput."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    window = {}

    def start_window() -> None:  # runs once, when every client has warmed up
        window["start"] = time.perf_counter()
        window["stop"] = window["start"] + seconds

    barrier = threading.Barrier(clients, action=start_window)

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        for body in bodies[:WARMUP_REQUESTS]:
            _post(connection, path, body, headers)
        barrier.wait()
        position = number
        while time.perf_counter() < window["stop"]:
            body = bodies[position % len(bodies)]
            started = time.perf_counter()
            status = _post(connection, path, body, headers)
            latencies[number].append(time.perf_counter() - started)
            failures[number] += status != 200
            position += clients

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - window["start"]

    all_latencies = np.concatenate([np.asarray(values) for values in latencies]) * 1000
    return {
        "requests": int(all_latencies.size),
        "failures": int(sum(failures)),
        "p50_ms": float(np.percentile(all_latencies, 50)),
        "p99_ms": float(np.percentile(all_latencies, 99)),
        "throughput_rps": float(all_latencies.size / elapsed),
    }


def _post(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> int:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def request_bodies(artifact_dir: Path) -> tuple[list[bytes], list[bytes]]:
    """Return /predict bodies for random known (user, movie) pairs and /recommend bodies for random users."""
    artifacts = load_artifacts(artifact_dir)
    rng = np.random.default_rng(SEED)
    user_ids = rng.choice(artifacts.train.user_ids, size=N_PAIRS)
    movie_ids = rng.choice(artifacts.train.movie_ids, size=N_PAIRS)
    predict = [
        json.dumps({"request": {"user_id": int(user), "movie_id": int(movie)}}).encode()
        for user, movie in zip(user_ids, movie_ids)
    ]
    recommend = [json.dumps({"request": {"user_id": int(user), "top_n": 10}}).encode() for user in user_ids]
    return predict, recommend


# --- report ----------------------------------------------------------------------
def print_report(results: dict) -> None:
    print(f"machine: {results['machine']}")
    print(f"load average before / after: {results['load_average_before']} / {results['load_average_after']}")
    print(f"artifacts: {results['artifacts']} (model {results['model']})")
    print(f"load: {results['seconds']:g} s per row, clients are threads with keep-alive connections\n")
    print(f"{'endpoint':<22}{'clients':>8}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}{'failed':>8}")
    for row in results["rows"]:
        print(
            f"{row['endpoint']:<22}{row['clients']:>8}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['throughput_rps']:>10.0f}{row['failures']:>8}"
        )
    print()
    for clients, ratio in results["predict_echo_ratio"].items():
        print(f"predict/echo throughput ratio, {clients} client(s): {ratio:.2f}")
    print(
        f"start to /readyz 200: {', '.join(f'{s:.2f}' for s in results['ready_seconds'])} s "
        f"(median {statistics.median(results['ready_seconds']):.2f} s)"
    )
    print(f"worker RSS: recommender {results['recommender_rss_mib']} MiB, echo {results['echo_rss_mib']} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=REPO_ROOT / "outputs", help="artifact directory to serve")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load row, in seconds")
    parser.add_argument("--startups", type=int, default=3, help="recommender start-ups timed to /readyz")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    load_before = [round(value, 2) for value in os.getloadavg()]
    predict_bodies, recommend_bodies = request_bodies(args.artifacts)
    env = {**os.environ, "CF_ARTIFACT_DIR": str(args.artifacts.resolve()), "BENTOML_DO_NOT_TRACK": "True"}

    ready_seconds = []
    for _ in range(args.startups - 1):
        server = Server(RECOMMENDER, env)
        ready_seconds.append(server.ready_seconds)
        server.stop()
    recommender = Server(RECOMMENDER, env)
    ready_seconds.append(recommender.ready_seconds)
    echo = Server(ECHO, env)

    rows = []
    try:
        for clients in CONCURRENCY_LEVELS:
            for name, server in (("/predict", recommender), ("/predict (echo)", echo)):
                result = run_load(server.port, "/predict", predict_bodies, clients, args.seconds)
                rows.append({"endpoint": name, "clients": clients, **result})
        result = run_load(recommender.port, "/recommend", recommend_bodies, 1, args.seconds)
        rows.append({"endpoint": "/recommend top 10", "clients": 1, **result})
        recommender_rss = [round(rss) for rss in recommender.worker_rss_mib()]
        echo_rss = [round(rss) for rss in echo.worker_rss_mib()]
    finally:
        recommender.stop()
        echo.stop()

    throughput = {(row["endpoint"], row["clients"]): row["throughput_rps"] for row in rows}
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "artifacts": str(args.artifacts),
        "model": load_artifacts(args.artifacts).model.name,
        "seconds": args.seconds,
        "rows": rows,
        "predict_echo_ratio": {
            clients: throughput[("/predict", clients)] / throughput[("/predict (echo)", clients)]
            for clients in CONCURRENCY_LEVELS
        },
        "ready_seconds": ready_seconds,
        "load_average_before": load_before,
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "recommender_rss_mib": recommender_rss,
        "echo_rss_mib": echo_rss,
    }
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
