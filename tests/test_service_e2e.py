"""End-to-end tests against a real ``bentoml serve`` process on 127.0.0.1.

One server, started from the repository root on the fixture artifacts, serves most
of the module. The schemathesis run fuzzes it through its own OpenAPI document. The
last test builds a bento in a temporary BENTOML_HOME and serves that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from src.cfrec.artifacts import load_artifacts

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICE = "src.service:CFRecommender"
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 20
# `bentoml build` resolves the pinned requirements through the package index.
BUILD_TIMEOUT_SECONDS = 300
# Schemathesis budget: examples per operation, and a hard limit on the whole run.
FUZZ_MAX_EXAMPLES = 25
FUZZ_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", "127.0.0.1", "--port", str(port)]


def server_env(artifact_dir: Path) -> dict[str, str]:
    return {**os.environ, "CF_ARTIFACT_DIR": str(artifact_dir), "BENTOML_DO_NOT_TRACK": "True"}


def wait_until_ready(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bentoml serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"bentoml serve not ready after {READY_TIMEOUT_SECONDS} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen) -> None:
    """Stop the server and its workers: SIGTERM to the process group, SIGKILL after a timeout."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def running_server(command: list[str], cwd: Path, env: dict[str, str], log_path: Path, port: int):
    """Run ``command`` as a server in its own process group; yield its base URL once ready."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches the workers too
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, base_url, log_path)
        yield base_url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def server(fixture_artifacts_dir, tmp_path_factory):
    """Base URL of a ``bentoml serve`` process running the service on the fixture artifacts."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server(serve_command(port), REPO_ROOT, server_env(fixture_artifacts_dir), log_path, port) as url:
        yield url


def test_served_predict_matches_model(server, fixture_artifacts_dir):
    response = httpx.post(f"{server}/predict", json={"request": {"user_id": 1, "movie_id": 1193}}, timeout=10)

    assert response.status_code == 200
    body = response.json()
    artifacts = load_artifacts(fixture_artifacts_dir)
    expected = artifacts.model.predict(artifacts.train.user_index([1]), artifacts.train.item_index([1193]))
    assert body["user_id"] == 1
    assert body["movie_id"] == 1193
    assert body["predicted_rating"] == round(float(expected.rating[0]), 2)
    assert body["rounded_rating"] in {1, 2, 3, 4, 5}
    assert body["fallback"] is False
    assert body["fallback_reason"] is None
    assert body["model"] == artifacts.model.name


def test_served_error_body_is_object(server):
    response = httpx.post(f"{server}/predict", json={"request": {"user_id": 99_999, "movie_id": 1193}}, timeout=10)

    assert response.status_code == 404
    assert response.json() == {"error": "user_id 99999 not found in users.dat"}


def test_served_livez(server):
    assert httpx.get(f"{server}/livez", timeout=5).status_code == 200


def test_metrics_count_by_endpoint_and_outcome(server):
    found = httpx.post(f"{server}/similar_movies", json={"request": {"movie_id": 1193}}, timeout=30)
    unknown = httpx.post(f"{server}/similar_movies", json={"request": {"movie_id": 99_999}}, timeout=30)
    invalid = httpx.post(f"{server}/similar_movies", json={"request": {"movie_id": 0}}, timeout=30)
    assert found.status_code == 200
    assert unknown.status_code == 404
    assert invalid.status_code == 400

    response = httpx.get(f"{server}/metrics", timeout=10)

    assert response.status_code == 200
    counts = {
        (sample.labels["endpoint"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "cfrec_api_requests"
        for sample in family.samples
        if sample.name == "cfrec_api_requests_total"
    }
    assert counts[("similar_movies", "success")] >= 1
    assert counts[("similar_movies", "not_found")] >= 1
    assert counts[("similar_movies", "invalid_request")] >= 1


def test_fuzzing_finds_no_server_error(server, tmp_path):
    # The command sits beside the interpreter in a virtualenv, which need not be on PATH.
    beside_python = Path(sys.executable).with_name("schemathesis")
    schemathesis = str(beside_python) if beside_python.is_file() else shutil.which("schemathesis")
    if schemathesis is None:
        pytest.fail("the schemathesis command is missing; run pip install -r requirements-dev.txt")

    result = subprocess.run(
        [
            schemathesis,
            "run",
            f"{server}/docs.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(FUZZ_MAX_EXAMPLES),
            "--workers",
            "2",
            "--seed",
            "20240601",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_SECONDS,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_missing_artifacts_exit_nonzero(tmp_path):
    result = subprocess.run(
        serve_command(free_port()),
        cwd=REPO_ROOT,
        env=server_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT_SECONDS,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"artifact not found: {tmp_path / 'user_item_matrix.pkl'}" in output
    assert "run `python src/train.py`" in output
    assert "Traceback" not in output


def test_built_bento_serves_predict(fixture_artifacts_dir, tmp_path):
    context = tmp_path / "context"
    shutil.copytree(REPO_ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "bentofile.yaml", context)
    shutil.copy(REPO_ROOT / "requirements.txt", context)
    shutil.copytree(fixture_artifacts_dir, context / "outputs")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml_home"), "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("CF_ARTIFACT_DIR", None)
    env.pop("CF_OUTPUT_DIR", None)

    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")

    # Served from an unrelated directory: the bento must find its code and outputs itself.
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, tmp_path, env, tmp_path / "serve.log", port) as url:
        response = httpx.post(f"{url}/predict", json={"request": {"user_id": 1, "movie_id": 1193}}, timeout=10)

    assert response.status_code == 200
    artifacts = load_artifacts(fixture_artifacts_dir)
    expected = artifacts.model.predict(artifacts.train.user_index([1]), artifacts.train.item_index([1193]))
    assert response.json()["predicted_rating"] == round(float(expected.rating[0]), 2)
