"""The training pipeline and its artifacts, on the generated fixture data set."""

import io
import json
import os
import pickle

import numpy as np
import pytest

from cfrec import artifacts, pipeline
from cfrec.artifacts import ArtifactError, load_artifacts


def test_run_writes_artifacts_and_metrics(fixture_artifacts_dir):
    names = {path.name for path in fixture_artifacts_dir.iterdir()}
    for expected in ("user_item_matrix.pkl", "model.pkl", "catalog.pkl", "item_neighbors.pkl",
                     "metadata.json", "metrics.json"):
        assert expected in names
    assert not [name for name in names if name.endswith(".tmp")]


def test_metrics_json_has_every_model_and_split(fixture_artifacts_dir):
    record = json.loads((fixture_artifacts_dir / "metrics.json").read_text())
    assert record["test_size"] == 0.2
    assert record["seed"] == 42
    assert record["n_train"] + record["n_test"] == 60 * 18
    for name in ("random", "global_mean", "user_cosine"):
        for key in ("rmse", "mae", "accuracy", "fit_seconds", "predict_seconds"):
            assert key in record["models"][name], (name, key)
    assert record["served_model"] in record["models"]


def test_metadata_records_run(fixture_artifacts_dir, fixture_data_dir):
    from cfrec.data import file_md5

    metadata = json.loads((fixture_artifacts_dir / "metadata.json").read_text())
    assert metadata["format_version"] == artifacts.FORMAT_VERSION
    assert metadata["ratings_md5"] == file_md5(fixture_data_dir / "ratings.dat")
    assert metadata["split"] == {"test_size": 0.2, "seed": 42, "n_train": 864, "n_test": 216}
    assert {"numpy", "scipy", "scikit-learn", "pandas", "python"} <= set(metadata["versions"])
    assert metadata["created_at"]


def test_loaded_model_predicts_like_metrics(fixture_artifacts_dir):
    loaded = load_artifacts(fixture_artifacts_dir)
    record = json.loads((fixture_artifacts_dir / "metrics.json").read_text())
    example = record["models"][loaded.model.name]["example_prediction"]
    predictions = loaded.model.predict(
        loaded.train.user_index([example["user_id"]]), loaded.train.item_index([example["movie_id"]])
    )
    assert predictions.rating[0] == pytest.approx(example["predicted_rating"])


def test_pickles_hold_only_standard_types(fixture_artifacts_dir):
    allowed = ("numpy", "scipy", "pandas", "builtins", "collections", "copyreg", "_codecs", "datetime")
    for path in fixture_artifacts_dir.glob("*.pkl"):
        modules = _pickled_modules(path.read_bytes())
        assert all(module.split(".")[0] in allowed for module in modules), (path.name, modules)


def _pickled_modules(payload: bytes) -> set[str]:
    modules = set()

    class RecordingUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            modules.add(module)
            return super().find_class(module, name)

    RecordingUnpickler(io.BytesIO(payload)).load()
    return modules


def test_serve_option_picks_model(fixture_data_dir, tmp_path):
    config = pipeline.TrainConfig(
        data_dir=fixture_data_dir, output_dir=tmp_path, verify_checksums=False,
        models=("user_cosine",), serve="user_cosine", ranking=False, figures=False,
    )
    record = pipeline.run_training(config)
    assert record["served_model"] == "user_cosine"
    assert load_artifacts(tmp_path).model.name == "user_cosine"
    assert (tmp_path / "user_similarity.pkl").is_file()


def test_rerun_removes_stale_model_files(fixture_data_dir, tmp_path):
    common = dict(data_dir=fixture_data_dir, output_dir=tmp_path, verify_checksums=False, figures=False)
    pipeline.run_training(pipeline.TrainConfig(models=("user_cosine", "item_knn"), serve="item_knn", **common))
    assert (tmp_path / "user_similarity.pkl").is_file()
    assert (tmp_path / "item_similarity.pkl").is_file()

    pipeline.run_training(pipeline.TrainConfig(models=("baseline",), **common))
    assert not (tmp_path / "user_similarity.pkl").exists()
    assert not (tmp_path / "item_similarity.pkl").exists()
    assert load_artifacts(tmp_path).model.name == "baseline"


def test_serve_must_be_trained(fixture_data_dir, tmp_path):
    config = pipeline.TrainConfig(data_dir=fixture_data_dir, output_dir=tmp_path, verify_checksums=False,
                                  models=("user_cosine",), serve="baseline")
    with pytest.raises(ValueError, match="--serve baseline"):
        pipeline.run_training(config)


def test_failed_write_keeps_previous_artifacts(fixture_artifacts_dir, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "outputs"
    shutil.copytree(fixture_artifacts_dir, target)
    before = load_artifacts(target).metadata["run_id"]

    loaded = load_artifacts(target)
    calls = {"count": 0}
    original_dumps = pickle.dumps

    def interrupt_third_file(obj, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt
        return original_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(artifacts.pickle, "dumps", interrupt_third_file)
    with pytest.raises(KeyboardInterrupt):
        artifacts.save_artifacts(target, loaded.train, loaded.model, loaded.movies, loaded.user_ids,
                                 loaded.item_neighbors, {**loaded.metadata, "run_id": "new"})
    monkeypatch.undo()

    assert load_artifacts(target).metadata["run_id"] == before
    assert not list(target.glob(".*.tmp"))


def test_truncated_artifact_is_a_clear_error(fixture_artifacts_dir, tmp_path):
    import shutil

    target = tmp_path / "outputs"
    shutil.copytree(fixture_artifacts_dir, target)
    model_file = target / "model.pkl"
    model_file.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"model\.pkl is unreadable.*python src/train.py"):
        load_artifacts(target)


def test_other_format_version_is_rejected(fixture_artifacts_dir, tmp_path):
    import shutil

    target = tmp_path / "outputs"
    shutil.copytree(fixture_artifacts_dir, target)
    content = pickle.loads((target / "catalog.pkl").read_bytes())
    content["format_version"] = 999
    (target / "catalog.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(ArtifactError, match="format version 999"):
        load_artifacts(target)


def test_mixed_runs_are_rejected(fixture_artifacts_dir, tmp_path):
    import shutil

    target = tmp_path / "outputs"
    shutil.copytree(fixture_artifacts_dir, target)
    content = pickle.loads((target / "catalog.pkl").read_bytes())
    content["metadata"]["run_id"] = "another-run"
    (target / "catalog.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(ArtifactError, match="another-run"):
        load_artifacts(target)


def test_missing_artifact_names_file(tmp_path):
    with pytest.raises(ArtifactError, match=r"user_item_matrix\.pkl.*python src/train.py"):
        load_artifacts(tmp_path)


def test_output_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CF_OUTPUT_DIR", str(tmp_path))
    assert artifacts.resolve_output_dir() == tmp_path
    assert artifacts.resolve_output_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("CF_OUTPUT_DIR")
    assert artifacts.resolve_output_dir() == artifacts.DEFAULT_OUTPUT_DIR


def test_item_neighbors_are_sorted_and_exclude_self(fixture_artifacts_dir):
    neighbors = load_artifacts(fixture_artifacts_dir).item_neighbors
    index, similarity = neighbors["neighbor_index"], neighbors["similarity"]
    for item in range(index.shape[0]):
        valid = index[item] >= 0
        assert item not in index[item][valid]
        assert np.all(np.diff(similarity[item][valid]) <= 1e-6)
        assert np.all(np.isnan(similarity[item][~valid]))
    assert os.path.getsize(fixture_artifacts_dir / "item_neighbors.pkl") > 0
