"""`python src/train.py` and `python src/train_easy.py` as a user runs them."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, real_data_dir

from cfrec.artifacts import load_artifacts

TRAIN = [sys.executable, "src/train.py"]
TRAIN_EASY = [sys.executable, "src/train_easy.py"]


def run(command, **kwargs):
    env = {**os.environ, "CF_DATA_URL": "", "CF_OUTPUT_DIR": "", "CF_DATA_DIR": "", **kwargs.pop("env", {})}
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_help_documents_every_option():
    result = run([*TRAIN, "--help"], env={"COLUMNS": "200"})
    assert result.returncode == 0
    for option in ("--data-dir", "--output-dir", "--data-url", "--test-size", "--seed", "--model", "--all",
                   "--serve", "--rank-with", "--skip-checksum", "--no-ranking", "--no-figures", "--quiet",
                   "--download-only"):
        assert option in result.stdout, option
    assert "default: 0.2" in result.stdout
    assert "default: 42" in result.stdout


def test_bad_test_size_is_a_usage_error():
    result = run([*TRAIN, "--test-size", "1.5"])
    assert result.returncode == 2
    assert "--test-size: must be between 0 and 1" in result.stderr


def test_unknown_model_is_a_usage_error():
    result = run([*TRAIN, "--model", "svd_plus_plus"])
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_missing_data_without_network_is_clear(tmp_path):
    missing = tmp_path / "nowhere" / "ml-1m"
    url = (tmp_path / "no-such-mirror.zip").as_uri()
    result = run([*TRAIN, "--data-dir", str(missing), "--output-dir", str(tmp_path / "out"), "--data-url", url])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert url in result.stderr
    assert str(missing) in result.stderr
    assert not missing.exists() or not any(missing.iterdir())


def test_download_only_fetches_and_stops(fixture_data_dir, tmp_path):
    import zipfile

    archive = tmp_path / "mirror.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("ratings.dat", "movies.dat", "users.dat"):
            bundle.write(fixture_data_dir / name, f"ml-1m/{name}")
    target = tmp_path / "data" / "ml-1m"

    result = run([*TRAIN, "--download-only", "--data-dir", str(target), "--data-url", archive.as_uri()])

    # The fixture's checksums differ from the release's, so the download is rejected cleanly.
    assert result.returncode == 1
    assert "md5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "ratings.dat").exists()


@pytest.mark.skipif(real_data_dir() is None, reason="MovieLens 1M not found in $CF_DATA_DIR or data/ml-1m")
def test_download_only_verifies_release(tmp_path):
    import zipfile

    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("ratings.dat", "movies.dat", "users.dat"):
            bundle.write(real_data_dir() / name, f"ml-1m/{name}")
    target = tmp_path / "data" / "ml-1m"

    result = run([*TRAIN, "--download-only", "--data-dir", str(target), "--data-url", archive.as_uri()])

    assert result.returncode == 0, result.stderr
    assert (target / "ratings.dat").stat().st_size == (real_data_dir() / "ratings.dat").stat().st_size
    assert not (tmp_path / "out").exists()


def test_train_on_fixture_writes_outputs(fixture_data_dir, tmp_path):
    output_dir = tmp_path / "out"
    result = run([*TRAIN, "--data-dir", str(fixture_data_dir), "--output-dir", str(output_dir),
                  "--skip-checksum", "--model", "user_cosine", "--quiet"])
    assert result.returncode == 0, result.stderr
    assert "served model: user_cosine" in result.stdout
    assert (output_dir / "report.md").is_file()
    assert (output_dir / "figures" / "model_comparison.png").is_file()
    assert load_artifacts(output_dir).model.name == "user_cosine"


def test_output_dir_from_environment_variable(fixture_data_dir, tmp_path):
    result = run([*TRAIN, "--skip-checksum", "--model", "user_cosine", "--quiet", "--no-figures"],
                 env={"CF_DATA_DIR": str(fixture_data_dir), "CF_OUTPUT_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.pkl").is_file()


def test_checksum_mismatch_without_skip_is_clear(fixture_data_dir, tmp_path):
    result = run([*TRAIN, "--data-dir", str(fixture_data_dir), "--output-dir", str(tmp_path)])
    assert result.returncode == 1
    assert "md5" in result.stderr
    assert "Traceback" not in result.stderr


# --- the real MovieLens 1M ------------------------------------------------------
needs_ml1m = pytest.mark.skipif(real_data_dir() is None, reason="MovieLens 1M not found in $CF_DATA_DIR or data/ml-1m")


@pytest.fixture(scope="module")
def ml1m_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("ml1m-outputs")
    result = run([*TRAIN, "--data-dir", str(real_data_dir()), "--output-dir", str(output_dir),
                  "--model", "user_cosine", "--quiet", "--no-figures", "--no-ranking"])
    assert result.returncode == 0, result.stderr
    return output_dir, result


@needs_ml1m
def test_ml1m_seed_parity_figures(ml1m_run):
    output_dir, _ = ml1m_run
    models = json.loads((output_dir / "metrics.json").read_text())["models"]
    assert models["user_cosine"]["accuracy"] >= 0.37
    assert 4.2 <= models["user_cosine"]["example_prediction"]["predicted_rating"] <= 4.6
    assert models["random"]["accuracy"] == pytest.approx(0.20, abs=0.01)
    assert models["global_mean"]["accuracy"] == pytest.approx(0.35, abs=0.02)
    assert 0.95 <= models["user_cosine"]["rmse"] <= 1.0


@needs_ml1m
def test_ml1m_train_easy_matches_train(ml1m_run, tmp_path):
    output_dir, _ = ml1m_run
    expected = json.loads((output_dir / "metrics.json").read_text())["models"]["user_cosine"]["accuracy"]
    result = run([*TRAIN_EASY, "--data-dir", str(real_data_dir()), "--output-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    found = float(re.search(r"accuracy user_cosine: ([0-9.]+)", result.stdout).group(1))
    assert found == pytest.approx(expected, abs=1e-4)
    assert (tmp_path / "user_similarity.pkl").is_file()


@needs_ml1m
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL])
def test_ml1m_killed_run_keeps_previous_artifacts(ml1m_run, tmp_path, signal_number):
    previous, _ = ml1m_run
    output_dir = tmp_path / "outputs"
    shutil.copytree(previous, output_dir)
    run_id = load_artifacts(output_dir).metadata["run_id"]

    process = subprocess.Popen(
        [*TRAIN, "--data-dir", str(real_data_dir()), "--output-dir", str(output_dir), "--model", "user_cosine"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    _wait_for_line(process, "user_cosine: fit", timeout=120)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode != 0
    if signal_number == signal.SIGINT:
        assert "interrupted" in stderr
        assert "Traceback" not in stderr
    assert load_artifacts(output_dir).metadata["run_id"] == run_id


def _wait_for_line(process, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    process.kill()
    pytest.fail(f"train.py never logged {text!r}")
