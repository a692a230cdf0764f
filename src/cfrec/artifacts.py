"""Writing and loading the trained artifacts in ``outputs/``.

Every pickle contains a dict of standard objects only (numpy arrays, scipy.sparse
matrices, pandas frames, dict, str, int, float), so it loads whatever the import
path of this package is. Each file carries ``format_version`` and the run's
metadata. A run writes every file to a temporary name first and renames them into
place at the end, so an interrupted run leaves the previous set loadable. The
loader checks that all files come from the same run.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .models import MODELS, get_model_class
from .models.base import Recommender
from .trainset import TrainSet

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_OUTPUT_DIR = Path("outputs")

USER_ITEM_MATRIX_FILE = "user_item_matrix.pkl"
MODEL_FILE = "model.pkl"
RANKER_FILE = "ranker.pkl"
CATALOG_FILE = "catalog.pkl"
ITEM_NEIGHBORS_FILE = "item_neighbors.pkl"
METADATA_FILE = "metadata.json"

RETRAIN_HINT = "run `python src/train.py` to create it"


class ArtifactError(RuntimeError):
    """Raised when an artifact is missing, unreadable or of another format version."""


def resolve_output_dir(output_dir: str | os.PathLike | None = None) -> Path:
    """Return ``output_dir``, else ``$CF_OUTPUT_DIR``, else ``outputs/``."""
    if output_dir is not None:
        return Path(output_dir)
    return Path(os.environ.get("CF_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)


@dataclass
class Artifacts:
    """Everything the service needs, as loaded from one training run."""

    train: TrainSet
    model: Recommender  # the rating model behind /predict
    ranker: Recommender  # the model whose scores order /recommend (may be ``model``)
    movies: pd.DataFrame  # movie_id, title, genres for every movie in movies.dat
    user_ids: np.ndarray  # every user_id in users.dat, sorted
    item_neighbors: dict  # neighbor_index (n_items, k) int32, similarity (n_items, k) float32
    metadata: dict


# --- writing -------------------------------------------------------------------
def save_artifacts(
    output_dir: Path,
    train: TrainSet,
    model: Recommender,
    movies: pd.DataFrame,
    user_ids: np.ndarray,
    item_neighbors: dict,
    metadata: dict,
    ranker: Recommender | None = None,
    other_models: tuple[Recommender, ...] = (),
) -> list[Path]:
    """Write the served models and their companions to ``output_dir``; return the paths.

    ``model`` goes to model.pkl and ``ranker`` (default: ``model``) to ranker.pkl.
    ``other_models`` are trained models that are not served; only their
    ``separate_files`` (e.g. user_cosine's ``user_similarity.pkl``) are written.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    record = {"format_version": FORMAT_VERSION, "metadata": metadata}

    contents = {
        USER_ITEM_MATRIX_FILE: {**record, **train.to_state()},
        CATALOG_FILE: {**record, "movies": movies, "user_ids": np.asarray(user_ids)},
        ITEM_NEIGHBORS_FILE: {**record, **item_neighbors},
    }
    contents.update(_model_contents(model, MODEL_FILE, record))
    if ranker is None or ranker is model:
        contents[RANKER_FILE] = {**record, "same_as": MODEL_FILE}
    else:
        contents.update(_model_contents(ranker, RANKER_FILE, record))
    for other in other_models:
        for attribute, file_name in other.separate_files.items():
            contents.setdefault(file_name, {**record, attribute: getattr(other, attribute)})

    metadata_text = json.dumps({"format_version": FORMAT_VERSION, **metadata}, indent=2, default=str)
    contents[METADATA_FILE] = metadata_text.encode()
    staged = {}
    try:
        for name, content in contents.items():
            staged[name] = _write_temporary(output_dir, name, content)
    except BaseException:  # KeyboardInterrupt included: leave no temporary files behind
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        raise

    # Renames are atomic each; doing them together, last, keeps the window small.
    for name, temporary in staged.items():
        os.replace(temporary, output_dir / name)
    _remove_stale_model_files(output_dir, keep=set(staged))
    return [output_dir / name for name in staged]


def _remove_stale_model_files(output_dir: Path, keep: set[str]) -> None:
    """Delete model files that an earlier run wrote and this one did not, so a bento packs none."""
    known = {name for model in MODELS.values() for name in model.separate_files.values()}
    for name in sorted(known - keep):
        if (output_dir / name).is_file():
            (output_dir / name).unlink()
            logger.info("removed %s: the current run does not use it", output_dir / name)


def _model_contents(model: Recommender, file_name: str, record: dict) -> dict:
    state = model.get_state()
    contents = {}
    for attribute, separate_name in model.separate_files.items():
        contents[separate_name] = {**record, attribute: state["fitted"].pop(attribute)}
    contents[file_name] = {**record, "model": state, "separate_files": dict(model.separate_files)}
    return contents


def write_pickle(path: Path, obj) -> None:
    """Pickle ``obj`` to ``path`` atomically: a temporary file, then a rename."""
    temporary = _write_temporary(path.parent, path.name, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(temporary, path)


def _write_temporary(directory: Path, name: str, content) -> Path:
    data = content if isinstance(content, bytes) else pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_current_umask())  # mkstemp creates 0600; use the usual mode
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- loading -------------------------------------------------------------------
def read_pickle(path: Path) -> dict:
    """Load one artifact and check its format version; raise ArtifactError otherwise."""
    if not path.is_file():
        raise ArtifactError(f"artifact not found: {path}; {RETRAIN_HINT}")
    try:
        with open(path, "rb") as file:
            content = pickle.load(file)
    except Exception as error:  # a truncated or foreign file fails in many ways
        reason = f"{type(error).__name__}: {error}"
        raise ArtifactError(f"artifact {path} is unreadable ({reason}); {RETRAIN_HINT}") from None

    version = content.get("format_version") if isinstance(content, dict) else None
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"artifact {path} has format version {version!r}, this code reads {FORMAT_VERSION}; "
            f"{RETRAIN_HINT} again"
        )
    return content


def load_artifacts(output_dir: Path) -> Artifacts:
    """Load the artifacts of one training run from ``output_dir``."""
    matrix = read_pickle(output_dir / USER_ITEM_MATRIX_FILE)
    model_record = read_pickle(output_dir / MODEL_FILE)
    ranker_record = read_pickle(output_dir / RANKER_FILE)
    catalog = read_pickle(output_dir / CATALOG_FILE)
    neighbors = read_pickle(output_dir / ITEM_NEIGHBORS_FILE)
    for record, name in (
        (matrix, USER_ITEM_MATRIX_FILE), (ranker_record, RANKER_FILE),
        (catalog, CATALOG_FILE), (neighbors, ITEM_NEIGHBORS_FILE),
    ):
        _check_same_run(model_record, record, output_dir / name)

    train = TrainSet.from_state(matrix)
    model = _load_model(output_dir, model_record, train)
    ranker = model if "same_as" in ranker_record else _load_model(output_dir, ranker_record, train)
    return Artifacts(
        train=train,
        model=model,
        ranker=ranker,
        movies=catalog["movies"],
        user_ids=catalog["user_ids"],
        item_neighbors={key: neighbors[key] for key in ("neighbor_index", "similarity")},
        metadata=model_record["metadata"],
    )


def _load_model(output_dir: Path, model_record: dict, train: TrainSet) -> Recommender:
    state = model_record["model"]
    for attribute, file_name in model_record["separate_files"].items():
        record = read_pickle(output_dir / file_name)
        _check_same_run(model_record, record, output_dir / file_name)
        state["fitted"][attribute] = record[attribute]
    return get_model_class(state["name"]).from_state(state, train)


def _check_same_run(reference: dict, record: dict, path: Path) -> None:
    expected = reference["metadata"].get("run_id")
    found = record["metadata"].get("run_id")
    if expected != found:
        raise ArtifactError(
            f"artifact {path} comes from training run {found!r} but {MODEL_FILE} from {expected!r}; "
            f"{RETRAIN_HINT} again"
        )
