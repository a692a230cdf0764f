"""Benchmark cfrec's training against Surprise on MovieLens 1M.

Every comparison uses the same split as ``python src/train.py``: 80/20 with seed 42,
from ``cfrec.trainset.train_test_split``. Surprise gets exactly the same training rows
(through ``Dataset.load_from_df(...).build_full_trainset()``) and the same test rows
(as a list of ``(user_id, movie_id, rating)`` tuples), and both sides are scored by
``cfrec.metrics.rating_metrics``.

Cases, selected with ``--only``:

- ``end_to_end``: ``python src/train.py`` with default options in a subprocess, against
  a subprocess that loads the same data, builds a Surprise trainset and fits and tests
  ``KNNBasic`` (cosine, user-based, k=40). Both report wall time and peak RSS.
- one case per registered model name (``user_knn``, ``mf``, ...): the model's fit and
  predict time and its metrics, next to the Surprise algorithms in ``COMPARISONS``.
  A name in ``COMPARISONS`` that ``cfrec.models.MODELS`` does not register is skipped
  with a message.

Ours and Surprise's runs of a case follow each other, so machine load affects both
alike; the ratios are the figures to compare across machines. The script prints
markdown tables to stdout and logs progress to stderr.

Usage (from the repository root)::

    python benchmarks/bench_training.py
    python benchmarks/bench_training.py --only mf --only baseline
    python benchmarks/bench_training.py --skip-surprise-knn --repeat 3 --markdown results.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from cfrec import data  # noqa: E402
from cfrec.metrics import rating_metrics  # noqa: E402
from cfrec.models import MODELS  # noqa: E402
from cfrec.trainset import TrainSet, train_test_split  # noqa: E402

logger = logging.getLogger("bench_training")

SEED = 42
TEST_SIZE = 0.2
END_TO_END = "end_to_end"
TRAIN_SCRIPT = REPO_ROOT / "src" / "train.py"

# Targets that the results page checks.
END_TO_END_TARGET_SECONDS = 30.0
USER_KNN_PREDICT_SPEEDUP_TARGET = 20.0
MF_FIT_TIME_SHARE_TARGET = 1 / 3


@dataclass(frozen=True)
class SurpriseSpec:
    """A Surprise algorithm with its hyper-parameters, built fresh for every run."""

    label: str
    build: Callable[[], object]
    # User-based k-NN over 6,040 users takes minutes per run, so --skip-surprise-knn skips it.
    slow_knn: bool = False


def _surprise_specs() -> dict[str, SurpriseSpec]:
    from surprise import SVD, BaselineOnly, KNNBaseline, KNNBasic, KNNWithMeans

    specs = [
        SurpriseSpec(
            "KNNBasic(cosine, user, k=40)",
            lambda: KNNBasic(k=40, sim_options={"name": "cosine", "user_based": True}, verbose=False),
            slow_knn=True,
        ),
        SurpriseSpec(
            "KNNWithMeans(cosine, user, k=40)",
            lambda: KNNWithMeans(k=40, sim_options={"name": "cosine", "user_based": True}, verbose=False),
            slow_knn=True,
        ),
        SurpriseSpec(
            "KNNBaseline(pearson_baseline, item, k=40)",
            lambda: KNNBaseline(
                k=40, sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False
            ),
        ),
        SurpriseSpec("BaselineOnly()", lambda: BaselineOnly(verbose=False)),
        # Surprise's SVD draws an unseeded initialisation by default, so the seed only makes runs repeatable.
        SurpriseSpec("SVD(defaults, random_state=42)", lambda: SVD(random_state=SEED)),
        SurpriseSpec(
            "SVD(n_factors=100, n_epochs=40, reg_all=0.05, random_state=42)",
            lambda: SVD(n_factors=100, n_epochs=40, reg_all=0.05, random_state=SEED),
        ),
    ]
    return {spec.label: spec for spec in specs}


KNN_BASIC = "KNNBasic(cosine, user, k=40)"
SVD_DEFAULT = "SVD(defaults, random_state=42)"
SVD_TUNED = "SVD(n_factors=100, n_epochs=40, reg_all=0.05, random_state=42)"

# Our model name -> the Surprise algorithms it is compared with.
COMPARISONS: dict[str, tuple[str, ...]] = {
    "user_cosine": (KNN_BASIC,),
    "baseline": ("BaselineOnly()",),
    "user_knn": ("KNNWithMeans(cosine, user, k=40)",),
    "item_knn": ("KNNBaseline(pearson_baseline, item, k=40)",),
    "mf": (SVD_DEFAULT, SVD_TUNED),
    "mf_small": (SVD_DEFAULT,),
}
# Extra configurations of our models, benchmarked under their own case name.
VARIANTS: dict[str, tuple[str, dict]] = {
    "mf_small": ("mf", {"n_factors": 20, "n_epochs": 4}),
}


@dataclass
class RunResult:
    """Metrics and timings of one algorithm on the test set, with the minimum seconds over repeats."""

    label: str
    rmse: float
    mae: float
    accuracy: float
    fit_seconds: float
    predict_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.fit_seconds + self.predict_seconds


@dataclass
class ProcessResult:
    """Wall time and peak resident set size of one subprocess run."""

    label: str
    wall_seconds: float
    peak_rss_mib: float
    detail: dict = field(default_factory=dict)


@dataclass
class Split:
    """The shared train/test rows in the forms both libraries take."""

    train_ratings: pd.DataFrame
    test_ratings: pd.DataFrame
    train: TrainSet
    surprise_train: object
    surprise_test: list[tuple[int, int, float]]


# --- data ----------------------------------------------------------------------
def load_split(data_dir: Path) -> Split:
    """Load ratings.dat and split it as ``src/train.py`` does, for cfrec and Surprise."""
    start = time.perf_counter()
    ratings = data.load_ratings(data_dir / "ratings.dat")
    train_ratings, test_ratings = train_test_split(ratings, test_size=TEST_SIZE, random_state=SEED)
    train = TrainSet.from_ratings(train_ratings)
    logger.info(
        "split %d ratings into %d train and %d test (%.2f s)",
        len(ratings), len(train_ratings), len(test_ratings), time.perf_counter() - start,
    )

    start = time.perf_counter()
    surprise_train = build_surprise_trainset(train_ratings)
    surprise_test = build_surprise_testset(test_ratings)
    logger.info("built the Surprise trainset and testset (%.2f s)", time.perf_counter() - start)
    return Split(train_ratings, test_ratings, train, surprise_train, surprise_test)


def build_surprise_trainset(train_ratings: pd.DataFrame):
    from surprise import Dataset, Reader

    frame = train_ratings[["user_id", "movie_id", "rating"]]
    return Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()


def build_surprise_testset(test_ratings: pd.DataFrame) -> list[tuple[int, int, float]]:
    return list(
        zip(
            test_ratings["user_id"].tolist(),
            test_ratings["movie_id"].tolist(),
            test_ratings["rating"].astype(float).tolist(),
        )
    )


# --- in-process runs -------------------------------------------------------------
def run_ours(name: str, split: Split, repeat: int) -> RunResult:
    """Fit and predict cfrec model ``name`` ``repeat`` times; keep the fastest fit and predict."""
    model_name, params = VARIANTS.get(name, (name, {}))
    model_class = MODELS[model_name]
    test = split.test_ratings
    fit_times, predict_times = [], []
    for _ in range(repeat):
        model = model_class(**params)
        start = time.perf_counter()
        # Models that accept a validation set are fitted without one, so no
        # per-epoch test evaluation is timed.
        model.fit(split.train, random_state=SEED)
        fit_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        predicted = model.predict(split.train.user_index(test["user_id"]), split.train.item_index(test["movie_id"]))
        predict_times.append(time.perf_counter() - start)

    metrics = rating_metrics(test["rating"].to_numpy(), predicted.rating)
    return RunResult(name, metrics["rmse"], metrics["mae"], metrics["accuracy"], min(fit_times), min(predict_times))


def run_surprise(spec: SurpriseSpec, surprise_train, surprise_test, repeat: int) -> RunResult:
    """Fit and test a Surprise algorithm ``repeat`` times; keep the fastest fit and test."""
    fit_times, predict_times = [], []
    for _ in range(repeat):
        algorithm = spec.build()
        start = time.perf_counter()
        algorithm.fit(surprise_train)
        fit_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        predictions = algorithm.test(surprise_test)
        predict_times.append(time.perf_counter() - start)

    true_rating = np.array([rating for _, _, rating in surprise_test])
    estimate = np.array([prediction.est for prediction in predictions])
    metrics = rating_metrics(true_rating, estimate)
    return RunResult(
        spec.label, metrics["rmse"], metrics["mae"], metrics["accuracy"], min(fit_times), min(predict_times)
    )


# --- subprocess runs -------------------------------------------------------------
def run_process(command: list[str], label: str, log_path: Path) -> tuple[ProcessResult, str]:
    """Run ``command`` from the repository root and return its wall time, peak RSS and stdout.

    The peak RSS is ``ru_maxrss`` from ``os.wait4`` for this child alone (KiB on Linux).
    stderr goes to ``log_path``.

    Raises
    ------
    RuntimeError
        If the command exits with a non-zero status; the message contains the end of its stderr.
    """
    with open(log_path, "w", encoding="utf-8") as stderr, tempfile.TemporaryFile("w+") as stdout:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall_seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        output = stdout.read()

    if process.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{label} failed with exit status {process.returncode}. End of its stderr:\n{tail}")
    return ProcessResult(label, wall_seconds, usage.ru_maxrss / 1024), output


# Log lines of cfrec.progress.timed_step: "HH:MM:SS INFO <step>[: detail] (1.23 s)". A
# progress bar may precede one on the same line, ended by a carriage return.
_STEP_LINE = re.compile(r"\d\d:\d\d:\d\d INFO (?P<step>.+) \((?P<seconds>\d+\.\d+) s\)$")
_MAX_STEP_CHARS = 80


def run_train_script(data_dir: Path, work_dir: Path) -> ProcessResult:
    """Time ``python src/train.py`` with default options, writing artifacts into ``work_dir``."""
    output_dir = work_dir / "outputs"
    log_path = work_dir / "train.log"
    command = [sys.executable, str(TRAIN_SCRIPT), "--data-dir", str(data_dir), "--output-dir", str(output_dir)]
    result, _ = run_process(command, "src/train.py", log_path)

    record = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    trained = [name for name, model in record["models"].items() if "params" in model]
    steps = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _STEP_LINE.search(line.split("\r")[-1])
        if match:
            step = match["step"].replace(str(output_dir), "--output-dir")
            if len(step) > _MAX_STEP_CHARS:
                step = step[: _MAX_STEP_CHARS - 1] + "…"
            steps.append((step, float(match["seconds"])))
    result.detail = {
        "trained": trained,
        "served": record["served_model"],
        "served_rmse": record["models"][record["served_model"]]["rmse"],
        "steps": steps,
    }
    return result


def run_surprise_end_to_end(data_dir: Path, work_dir: Path) -> tuple[ProcessResult, RunResult]:
    """Time a fresh process that loads the data and fits and tests Surprise's KNNBasic."""
    command = [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(data_dir), "--surprise-worker"]
    result, output = run_process(command, "Surprise KNNBasic worker", work_dir / "surprise.log")
    run = RunResult(**json.loads(output.strip().splitlines()[-1]))
    result.detail = {"rmse": run.rmse}
    return result, run


def surprise_worker(data_dir: Path) -> None:
    """Body of ``--surprise-worker``: one KNNBasic run, printed as one JSON line."""
    ratings = data.load_ratings(data_dir / "ratings.dat")
    train_ratings, test_ratings = train_test_split(ratings, test_size=TEST_SIZE, random_state=SEED)
    surprise_train = build_surprise_trainset(train_ratings)
    surprise_test = build_surprise_testset(test_ratings)
    run = run_surprise(_surprise_specs()[KNN_BASIC], surprise_train, surprise_test, repeat=1)
    print(json.dumps(run.__dict__))


# --- cases ---------------------------------------------------------------------
@dataclass
class Results:
    """Everything measured in one benchmark run."""

    ours: dict[str, RunResult] = field(default_factory=dict)
    surprise: dict[str, RunResult] = field(default_factory=dict)
    processes: dict[str, ProcessResult] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def run_end_to_end(args, results: Results) -> None:
    train_runs, surprise_runs = [], []
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-train-") as work_dir:
            logger.info("end to end %d/%d: python src/train.py", attempt + 1, args.repeat)
            train_runs.append(run_train_script(args.data_dir, Path(work_dir)))
            logger.info("  %.1f s, peak RSS %.0f MiB", train_runs[-1].wall_seconds, train_runs[-1].peak_rss_mib)
            if args.skip_surprise_knn:
                continue
            logger.info("end to end %d/%d: Surprise KNNBasic in a fresh process", attempt + 1, args.repeat)
            process, run = run_surprise_end_to_end(args.data_dir, Path(work_dir))
            surprise_runs.append((process, run))
            logger.info("  %.1f s, peak RSS %.0f MiB", process.wall_seconds, process.peak_rss_mib)

    results.processes["ours"] = _fastest_process(train_runs)
    if surprise_runs:
        results.processes["surprise"] = _fastest_process([process for process, _ in surprise_runs])
        # The worker's fit and test times stand in for an in-process KNNBasic run.
        results.surprise[KNN_BASIC] = min((run for _, run in surprise_runs), key=lambda run: run.total_seconds)
    else:
        results.skipped.append("end_to_end: Surprise KNNBasic (--skip-surprise-knn)")


def _fastest_process(runs: list[ProcessResult]) -> ProcessResult:
    fastest = min(runs, key=lambda run: run.wall_seconds)
    fastest.peak_rss_mib = max(run.peak_rss_mib for run in runs)
    return fastest


def run_model_case(name: str, args, split: Split, specs: dict[str, SurpriseSpec], results: Results) -> None:
    logger.info("%s: fit and predict (cfrec)", name)
    results.ours[name] = run_ours(name, split, args.repeat)
    _log_run(results.ours[name])

    for label in COMPARISONS.get(name, ()):
        spec = specs[label]
        if label in results.surprise:
            logger.info("%s: reusing the end-to-end run's figures", label)
            continue
        if spec.slow_knn and args.skip_surprise_knn:
            results.skipped.append(f"{name}: Surprise {label} (--skip-surprise-knn)")
            continue
        logger.info("%s: fit and test (Surprise)", label)
        results.surprise[label] = run_surprise(spec, split.surprise_train, split.surprise_test, args.repeat)
        _log_run(results.surprise[label])


def _log_run(run: RunResult) -> None:
    logger.info(
        "  RMSE %.4f, MAE %.4f, accuracy %.4f, fit %.2f s, predict %.2f s",
        run.rmse, run.mae, run.accuracy, run.fit_seconds, run.predict_seconds,
    )


# --- report ----------------------------------------------------------------------
def _speedup(theirs: float, ours: float) -> str:
    if ours <= 0:
        return "n/a"
    return f"{theirs / ours:.1f}x"


def format_environment(args) -> str:
    import scipy
    import surprise
    from threadpoolctl import threadpool_info

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pools = ", ".join(f"{pool['prefix']} {pool['version']} ({pool['num_threads']} threads)"
                     for pool in threadpool_info()) or "none found"
    command = " ".join(["python", "benchmarks/bench_training.py", *sys.argv[1:]])
    return "\n".join([
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} logical CPUs (`nproc`: {len(os.sched_getaffinity(0))}), {cpu}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"pandas {pd.__version__}, scikit-surprise {surprise.__version__}; thread pools: {pools}",
        f"- split: {TEST_SIZE:.0%} test, seed {SEED}; timings are the minimum of {args.repeat} run(s)",
    ])


def format_end_to_end(results: Results) -> str:
    ours = results.processes.get("ours")
    if ours is None:
        return ""
    theirs = results.processes.get("surprise")
    lines = [
        "| run | wall s | peak RSS MiB | test RMSE | what it does |",
        "|---|---:|---:|---:|---|",
        f"| `python src/train.py` | {ours.wall_seconds:.1f} | {ours.peak_rss_mib:.0f} | "
        f"{ours.detail['served_rmse']:.4f} ({ours.detail['served']}) | "
        f"trains {', '.join(ours.detail['trained'])}; ranking metrics, similar movies, artifacts, report |",
    ]
    if theirs is not None:
        lines.append(
            f"| Surprise {KNN_BASIC} | {theirs.wall_seconds:.1f} | {theirs.peak_rss_mib:.0f} | "
            f"{theirs.detail['rmse']:.4f} | loads and splits the data, fits, tests |"
        )
        lines.append(f"\nSurprise wall time / ours: {_speedup(theirs.wall_seconds, ours.wall_seconds)}")

    slowest = sorted(ours.detail["steps"], key=lambda step: -step[1])[:8]
    if slowest:
        lines.append("\nSlowest steps of `src/train.py` (from its log):\n")
        lines.append("| step | s |\n|---|---:|")
        lines.extend(f"| {step} | {seconds:.2f} |" for step, seconds in slowest)
    return "\n".join(lines)


def format_models(results: Results) -> str:
    header = (
        "| ours | Surprise | RMSE ours | RMSE Surprise | MAE ours | MAE Surprise | accuracy ours | "
        "accuracy Surprise | fit s ours | fit s Surprise | predict s ours | predict s Surprise | "
        "fit speed-up | predict speed-up | total speed-up |"
    )
    lines = [header, "|---|---|" + "---:|" * 13]
    for name, ours in results.ours.items():
        labels = [label for label in COMPARISONS.get(name, ()) if label in results.surprise] or [None]
        for label in labels:
            theirs = results.surprise.get(label)
            if theirs is None:
                lines.append(
                    f"| {name} | — | {ours.rmse:.4f} | — | {ours.mae:.4f} | — | {ours.accuracy:.4f} | — | "
                    f"{ours.fit_seconds:.2f} | — | {ours.predict_seconds:.2f} | — | — | — | — |"
                )
                continue
            lines.append(
                f"| {_describe(name)} | {label} | {ours.rmse:.4f} | {theirs.rmse:.4f} | "
                f"{ours.mae:.4f} | {theirs.mae:.4f} | "
                f"{ours.accuracy:.4f} | {theirs.accuracy:.4f} | {ours.fit_seconds:.2f} | {theirs.fit_seconds:.2f} | "
                f"{ours.predict_seconds:.2f} | {theirs.predict_seconds:.2f} | "
                f"{_speedup(theirs.fit_seconds, ours.fit_seconds)} | "
                f"{_speedup(theirs.predict_seconds, ours.predict_seconds)} | "
                f"{_speedup(theirs.total_seconds, ours.total_seconds)} |"
            )
    return "\n".join(lines)


def format_targets(results: Results) -> str:
    rows = []
    ours = results.processes.get("ours")
    if ours is not None:
        met = ours.wall_seconds < END_TO_END_TARGET_SECONDS
        rows.append(f"| `src/train.py` under {END_TO_END_TARGET_SECONDS:.0f} s | {ours.wall_seconds:.1f} s | "
                    f"{'yes' if met else 'no'} |")

    user_knn, knn_with_means = results.ours.get("user_knn"), results.surprise.get(COMPARISONS["user_knn"][0])
    if user_knn and knn_with_means:
        speedup = knn_with_means.predict_seconds / user_knn.predict_seconds
        rows.append(
            f"| user_knn predicts at least {USER_KNN_PREDICT_SPEEDUP_TARGET:.0f}x faster than KNNWithMeans | "
            f"{speedup:.1f}x (RMSE {user_knn.rmse:.4f} vs {knn_with_means.rmse:.4f}) | "
            f"{'yes' if speedup >= USER_KNN_PREDICT_SPEEDUP_TARGET else 'no'} |"
        )

    for name in ("mf", "mf_small"):
        mf = results.ours.get(name)
        for label in COMPARISONS[name]:
            svd = results.surprise.get(label)
            if mf is None or svd is None:
                continue
            share = mf.fit_seconds / svd.fit_seconds
            met = share <= MF_FIT_TIME_SHARE_TARGET and mf.rmse <= svd.rmse
            rows.append(
                f"| {_describe(name)} fits in at most 1/3 of {label}'s time at equal or lower RMSE | "
                f"{share:.2f} of its time; RMSE {mf.rmse:.4f} vs {svd.rmse:.4f} | {'yes' if met else 'no'} |"
            )
    if not rows:
        return ""
    return "\n".join(["| target | measured | met |", "|---|---|---|", *rows])


def _describe(name: str) -> str:
    if name not in VARIANTS:
        return name
    model_name, params = VARIANTS[name]
    return f"{model_name}({', '.join(f'{key}={value}' for key, value in params.items())})"


def format_report(args, results: Results) -> str:
    sections = ["## Environment\n", format_environment(args)]
    for title, body in (
        ("End to end", format_end_to_end(results)),
        ("Models", format_models(results) if results.ours else ""),
        ("Targets", format_targets(results)),
    ):
        if body:
            sections += [f"\n## {title}\n", body]
    if results.skipped:
        sections += ["\n## Skipped\n", "\n".join(f"- {reason}" for reason in results.skipped)]
    return "\n".join(sections) + "\n"


# --- command line ------------------------------------------------------------------
def case_names() -> list[str]:
    """Return every case: end to end, the compared models, then other registered models."""
    return [END_TO_END, *COMPARISONS, *(name for name in MODELS if name not in COMPARISONS)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="folder with ratings.dat (default: $CF_DATA_DIR, else data/ml-1m)",
    )
    parser.add_argument(
        "--only", action="append", choices=case_names(), metavar="NAME",
        help=f"run only this case; repeat for several (choices: {', '.join(case_names())}; default: all)",
    )
    parser.add_argument(
        "--skip-surprise-knn", action="store_true",
        help="skip Surprise's user-based KNNBasic and KNNWithMeans, which take minutes each",
    )
    parser.add_argument(
        "--repeat", type=_positive_int, default=1,
        help="timed runs per algorithm; the tables report the minimum time (default: 1)",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    # Internal: the end-to-end case starts this script again in this mode.
    parser.add_argument("--surprise-worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.data_dir = data.resolve_data_dir(args.data_dir).resolve()
    if not (args.data_dir / "ratings.dat").is_file():
        logger.error("ratings.dat not found in %s; run `make data` or pass --data-dir", args.data_dir)
        return 1

    if args.surprise_worker:
        surprise_worker(args.data_dir)
        return 0

    selected = args.only or case_names()
    results = Results()
    if END_TO_END in selected:
        run_end_to_end(args, results)

    model_names = [name for name in dict.fromkeys(selected) if name != END_TO_END]
    registered = [name for name in model_names if VARIANTS.get(name, (name,))[0] in MODELS]
    for name in [name for name in model_names if name not in registered]:
        logger.warning("%s is not registered in cfrec.models yet; skipped", name)
        results.skipped.append(f"{name}: not registered in cfrec.models")
    model_names = registered
    if model_names:
        split = load_split(args.data_dir)
        specs = _surprise_specs()
        for name in model_names:
            run_model_case(name, args, split, specs, results)

    report = format_report(args, results)
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
