"""The comparison report (outputs/report.md) and its matplotlib figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .progress import progress  # noqa: E402

FIGURE_DIR = "figures"
RATING_COLUMNS = ("rmse", "mae", "accuracy", "coverage", "fit_seconds", "predict_seconds")
RANKING_COLUMNS = ("precision@10", "recall@10", "ndcg@10", "hit@10", "coverage@10")

PROTOCOL = """\
- Split: random {test_pct:.0f} % of the ratings held out (seed {seed}); the user-item
  matrix and every model see the {n_train:,} training ratings only; {n_test:,} test ratings.
- Rating metrics on every test rating: RMSE, MAE, accuracy (prediction rounded to the
  nearest star, clipped to 1-5, equals the true rating) and coverage (share of test
  ratings the model estimated itself, without the cold-start fallback).
- Ranking metrics: for each test user who has at least one test rating >= 4, rank every
  movie not rated in training and keep the top 10; a hit is a movie the user rated >= 4
  in the test set. Precision@10, Recall@10 (hits / relevant test movies), NDCG@10
  (binary gains), Hit@10 (share of users with at least one hit), catalogue coverage
  (distinct recommended movies / movies in training).
- `random` predicts a uniform integer 1-5 and `global_mean` the training mean; neither ranks.
"""


def write_report(output_dir: Path, record: dict, dataset, train, test, fitted: dict) -> Path:
    """Write report.md and the figures; return the report's path."""
    figure_dir = output_dir / FIGURE_DIR
    figure_dir.mkdir(parents=True, exist_ok=True)
    served = fitted[record["served_model"]]
    plots = {
        "rating distribution": lambda: plot_rating_distribution(dataset.ratings, figure_dir),
        "ratings per user and per movie": lambda: plot_long_tail(dataset.ratings, figure_dir),
        "model comparison": lambda: plot_model_comparison(record["models"], figure_dir),
        "learning curve": lambda: plot_learning_curves(record["models"], figure_dir),
        "error distribution of the served model": lambda: plot_error_distribution(served, train, test, figure_dir),
    }
    figures = {}
    for title, plot in progress(plots.items(), total=len(plots), desc="figures"):
        path = plot()
        if path is not None:  # no learning curve without a model that records one
            figures[title] = path

    path = output_dir / "report.md"
    path.write_text(render_report(record, figures, output_dir), encoding="utf-8")
    return path


def render_report(record: dict, figures: dict[str, Path], output_dir: Path) -> str:
    """Render the markdown comparison table, the protocol and the machine."""
    lines = ["# Model comparison on MovieLens 1M", ""]
    lines += _table(record["models"], ("model", *RATING_COLUMNS), lambda result: "rmse" in result)
    ranked = {name: result for name, result in record["models"].items() if "ndcg@10" in result}
    if ranked:
        lines += ["", "## Top-10 ranking", ""]
        lines += _table(ranked, ("model", *RANKING_COLUMNS), lambda result: True)
    lines += [
        "",
        f"Served model: **{record['served_model']}** (lowest test RMSE unless chosen with `--serve`).",
        "",
        "## Protocol",
        "",
        PROTOCOL.format(
            test_pct=100 * record["test_size"], seed=record["seed"],
            n_train=record["n_train"], n_test=record["n_test"],
        ),
        "## Machine",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}. "
        "Timings are wall-clock seconds of one run on a shared machine.",
        "",
        "## Figures",
        "",
    ]
    for title, path in figures.items():
        lines += [f"![{title}]({path.relative_to(output_dir).as_posix()})", ""]
    return "\n".join(lines)


def _table(models: dict, columns: tuple[str, ...], include) -> list[str]:
    rows = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|",
    ]
    for name, result in models.items():
        if include(result):
            cells = [name] + [_format(result.get(column), column) for column in columns[1:]]
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def _format(value, column: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if column.endswith("_seconds") else f"{value:.4f}"


# --- figures -------------------------------------------------------------------
def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_rating_distribution(ratings, figure_dir: Path) -> Path:
    counts = ratings["rating"].value_counts().sort_index()
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.bar(counts.index.to_numpy(), counts.to_numpy(), color="#4c72b0")
    axes.set_xticks(counts.index.to_numpy())
    axes.set(xlabel="rating (stars)", ylabel="number of ratings", title="Rating distribution")
    return _save(figure, figure_dir / "rating_distribution.png")


def plot_long_tail(ratings, figure_dir: Path) -> Path:
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, column, label in ((axes[0], "user_id", "user"), (axes[1], "movie_id", "movie")):
        per_entity = np.sort(ratings[column].value_counts().to_numpy())[::-1]
        ax.plot(np.arange(1, len(per_entity) + 1), per_entity, color="#4c72b0")
        ax.set(yscale="log", xlabel=f"{label} rank", ylabel="ratings (log scale)", title=f"Ratings per {label}")
    return _save(figure, figure_dir / "ratings_per_user_and_movie.png")


def plot_model_comparison(models: dict, figure_dir: Path) -> Path:
    rated = [name for name, result in models.items() if "rmse" in result]
    ranked = [name for name, result in models.items() if "ndcg@10" in result]
    panels = [(rated, "rmse", "RMSE (lower is better)"), (rated, "accuracy", "accuracy (higher is better)")]
    if ranked:
        panels.append((ranked, "ndcg@10", "NDCG@10 (higher is better)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (names, metric, label) in zip(np.atleast_1d(axes), panels):
        values = [models[name][metric] for name in names]
        ax.barh(names, values, color="#55a868")
        ax.invert_yaxis()
        ax.set(xlabel=label, title=metric)
        ax.set_xlim(0, max(values) * 1.25)
        for position, value in enumerate(values):
            ax.text(value, position, f" {value:.3f}", va="center", fontsize=8)
    return _save(figure, figure_dir / "model_comparison.png")


def plot_learning_curves(models: dict, figure_dir: Path) -> Path | None:
    curves = {name: result["history"] for name, result in models.items() if result.get("history")}
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(6, 3.6))
    for name, history in curves.items():
        epochs = [entry["epoch"] for entry in history]
        axes.plot(epochs, [entry["train_rmse"] for entry in history], label=f"{name} train")
        if "test_rmse" in history[0]:
            axes.plot(epochs, [entry["test_rmse"] for entry in history], "--", label=f"{name} test")
    axes.set(xlabel="epoch", ylabel="RMSE", title="Learning curve")
    axes.legend()
    return _save(figure, figure_dir / "learning_curve.png")


def plot_error_distribution(model, train, test, figure_dir: Path) -> Path:
    predictions = model.predict(train.user_index(test["user_id"]), train.item_index(test["movie_id"]))
    errors = predictions.rating - test["rating"].to_numpy()
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.hist(errors, bins=np.linspace(-4, 4, 65), color="#c44e52")
    axes.set(xlabel="predicted - true rating", ylabel="test ratings", title=f"Errors of {model.name}")
    return _save(figure, figure_dir / "error_distribution.png")
