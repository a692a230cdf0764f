"""In-process tests of the BentoML service through ``CFRecommender.to_asgi()``.

The app runs in Starlette's TestClient, which drives the ASGI lifespan, so the
service's ``__init__`` loads the fixture artifacts exactly as a served worker does.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from starlette.testclient import TestClient

from src.cfrec.artifacts import MODEL_FILE, ArtifactError, load_artifacts
from src.cfrec.metrics import rounded_rating
from src.cfrec.serving import MAX_BATCH_PAIRS, MAX_TOP_N
from src.service import ARTIFACT_DIR_ENV, ArtifactsUnavailable, CFRecommender

# Ids of the generated fixture data set (see conftest.py).
USER = 1
MOVIE = 1193
USER_WITHOUT_RATINGS = 900
MOVIE_WITHOUT_RATINGS = 3001
ABSENT_USER = 99_999
ABSENT_MOVIE = 99_998


@pytest.fixture(scope="module")
def artifacts(fixture_artifacts_dir):
    return load_artifacts(fixture_artifacts_dir)


@pytest.fixture(scope="module")
def client(fixture_artifacts_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ARTIFACT_DIR_ENV, str(fixture_artifacts_dir))
        with TestClient(CFRecommender.to_asgi()) as test_client:
            yield test_client


def post(client, endpoint: str, body: dict):
    return client.post(f"/{endpoint}", json={"request": body})


def expected_prediction(artifacts, user_ids, movie_ids):
    train = artifacts.train
    return artifacts.model.predict(train.user_index(user_ids), train.item_index(movie_ids))


# --- probes and metadata ------------------------------------------------------------
def test_readyz_after_loading(client):
    assert client.get("/readyz").status_code == 200


def test_livez(client):
    assert client.get("/livez").status_code == 200


def test_model_info(client, artifacts):
    response = client.post("/model_info", json={})

    assert response.status_code == 200
    info = response.json()
    assert info["model"] == artifacts.model.name
    assert info["ranker"] == artifacts.ranker.name
    assert info["n_users"] == artifacts.train.n_users
    assert info["n_items"] == artifacts.train.n_items
    assert info["n_ratings"] == artifacts.train.user_items.nnz
    assert info["n_catalog_movies"] == len(artifacts.movies)
    assert info["training"]["run_id"] == artifacts.metadata["run_id"]
    assert info["metrics"] == artifacts.metadata.get("metrics")


def test_model_info_reports_metrics(client):
    metrics = client.post("/model_info", json={}).json()["metrics"]

    assert metrics is not None
    assert {"rmse", "mae", "accuracy"} <= set(metrics)


# --- /predict -----------------------------------------------------------------------
def test_predict_matches_model(client, artifacts):
    response = post(client, "predict", {"user_id": USER, "movie_id": MOVIE})

    assert response.status_code == 200
    body = response.json()
    expected = expected_prediction(artifacts, [USER], [MOVIE])
    assert body["user_id"] == USER
    assert body["movie_id"] == MOVIE
    assert body["predicted_rating"] == round(float(expected.rating[0]), 2)
    assert body["rounded_rating"] == int(rounded_rating(expected.rating)[0])
    assert 1 <= body["rounded_rating"] <= 5
    assert body["fallback"] is bool(expected.fallback[0])
    assert body["fallback_reason"] == expected.reasons()[0]
    assert body["model"] == artifacts.model.name


def test_predict_user_without_ratings_falls_back(client, artifacts):
    body = post(client, "predict", {"user_id": USER_WITHOUT_RATINGS, "movie_id": MOVIE}).json()

    assert body["fallback"] is True
    assert body["fallback_reason"].startswith("user_not_in_training")
    expected = expected_prediction(artifacts, [USER_WITHOUT_RATINGS], [MOVIE])
    assert body["predicted_rating"] == round(float(expected.rating[0]), 2)


def test_predict_movie_without_ratings_falls_back(client):
    body = post(client, "predict", {"user_id": USER, "movie_id": MOVIE_WITHOUT_RATINGS}).json()

    assert body["fallback"] is True
    assert body["fallback_reason"].startswith("movie_not_in_training")


def test_predict_absent_user_is_404(client):
    response = post(client, "predict", {"user_id": ABSENT_USER, "movie_id": MOVIE})

    assert response.status_code == 404
    assert response.json() == {"error": f"user_id {ABSENT_USER} not found in users.dat"}


def test_predict_absent_movie_is_404(client):
    response = post(client, "predict", {"user_id": USER, "movie_id": ABSENT_MOVIE})

    assert response.status_code == 404
    assert response.json() == {"error": f"movie_id {ABSENT_MOVIE} not found in movies.dat"}


# --- /predict_batch -----------------------------------------------------------------
def test_predict_batch_matches_model(client, artifacts):
    rng = np.random.default_rng(3)
    user_ids = rng.choice(artifacts.user_ids, size=200)
    movie_ids = rng.choice(artifacts.movies["movie_id"].to_numpy(), size=200)
    pairs = [{"user_id": int(u), "movie_id": int(m)} for u, m in zip(user_ids, movie_ids)]

    response = post(client, "predict_batch", {"pairs": pairs})

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    expected = expected_prediction(artifacts, user_ids, movie_ids)
    assert [(row["user_id"], row["movie_id"]) for row in predictions] == [(p["user_id"], p["movie_id"]) for p in pairs]
    assert [row["predicted_rating"] for row in predictions] == [round(float(r), 2) for r in expected.rating]
    assert [row["fallback_reason"] for row in predictions] == expected.reasons()


def test_predict_batch_at_limit(client):
    pairs = [{"user_id": USER, "movie_id": MOVIE}] * MAX_BATCH_PAIRS

    response = post(client, "predict_batch", {"pairs": pairs})

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == MAX_BATCH_PAIRS


def test_predict_batch_over_limit_is_400(client):
    pairs = [{"user_id": USER, "movie_id": MOVIE}] * (MAX_BATCH_PAIRS + 1)

    response = post(client, "predict_batch", {"pairs": pairs})

    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "request.pairs"
    assert "at most 10000 items" in body["error"]


def test_predict_batch_empty_is_400(client):
    response = post(client, "predict_batch", {"pairs": []})

    assert response.status_code == 400
    assert response.json()["field"] == "request.pairs"


def test_predict_batch_names_every_absent_id(client):
    pairs = [
        {"user_id": USER, "movie_id": MOVIE},
        {"user_id": ABSENT_USER, "movie_id": MOVIE},
        {"user_id": USER, "movie_id": ABSENT_MOVIE},
    ]

    response = post(client, "predict_batch", {"pairs": pairs})

    assert response.status_code == 404
    assert response.json() == {
        "error": f"user_id {ABSENT_USER} not found in users.dat; movie_id {ABSENT_MOVIE} not found in movies.dat"
    }


def test_predict_batch_bad_pair_names_its_position(client):
    pairs = [{"user_id": USER, "movie_id": MOVIE}, {"user_id": 0, "movie_id": MOVIE}]

    response = post(client, "predict_batch", {"pairs": pairs})

    assert response.status_code == 400
    assert response.json()["field"] == "request.pairs.1.user_id"


# --- /recommend ---------------------------------------------------------------------
def test_recommend_excludes_rated_movies(client, artifacts):
    response = post(client, "recommend", {"user_id": USER, "top_n": 5})

    assert response.status_code == 200
    body = response.json()
    train = artifacts.train
    user_index = int(train.user_index([USER])[0])
    row = train.user_items[user_index]
    rated = set(train.movie_ids[row.indices].tolist())
    recommended = [movie["movie_id"] for movie in body["recommendations"]]
    assert body["fallback"] is False
    assert body["fallback_reason"] is None
    assert len(recommended) == 5
    assert not rated & set(recommended)


def test_recommend_best_first(client, artifacts):
    body = post(client, "recommend", {"user_id": USER, "top_n": 5}).json()

    train = artifacts.train
    user_index = train.user_index([USER])
    scores = artifacts.ranker.score_items(user_index)[0]
    recommended = np.array([movie["movie_id"] for movie in body["recommendations"]])
    item_scores = scores[train.item_index(recommended)]
    assert np.all(np.diff(item_scores) <= 1e-12)
    rated = train.user_items[int(user_index[0])].indices
    unrated_scores = np.delete(scores, rated)
    unrated_scores = unrated_scores[np.isfinite(unrated_scores)]
    assert item_scores[-1] >= np.sort(unrated_scores)[-5] - 1e-12


def test_recommend_ratings_match_predict(client, artifacts):
    body = post(client, "recommend", {"user_id": USER, "top_n": 5}).json()

    movie_ids = [movie["movie_id"] for movie in body["recommendations"]]
    expected = expected_prediction(artifacts, [USER] * len(movie_ids), movie_ids)
    assert [movie["predicted_rating"] for movie in body["recommendations"]] == [
        round(float(r), 2) for r in expected.rating
    ]


def test_recommend_returns_catalog_fields(client, artifacts):
    movie = post(client, "recommend", {"user_id": USER}).json()["recommendations"][0]

    catalog_row = artifacts.movies.set_index("movie_id").loc[movie["movie_id"]]
    assert movie["title"] == catalog_row["title"]
    assert movie["genres"] == catalog_row["genres"].split("|")


def test_recommend_defaults_to_ten(client):
    body = post(client, "recommend", {"user_id": USER}).json()

    assert len(body["recommendations"]) == 10


def test_recommend_max_top_n(client, artifacts):
    body = post(client, "recommend", {"user_id": USER, "top_n": MAX_TOP_N}).json()

    # The fixture has fewer movies than MAX_TOP_N, so every scorable unrated movie comes back.
    recommended = [movie["movie_id"] for movie in body["recommendations"]]
    assert 10 < len(recommended) <= MAX_TOP_N
    assert len(set(recommended)) == len(recommended)


def test_recommend_user_without_ratings(client, artifacts):
    response = post(client, "recommend", {"user_id": USER_WITHOUT_RATINGS, "top_n": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["fallback"] is True
    assert body["fallback_reason"].startswith("user_not_in_training")
    movie_ids = [movie["movie_id"] for movie in body["recommendations"]]
    assert len(movie_ids) == 3
    expected = expected_prediction(artifacts, [USER_WITHOUT_RATINGS] * 3, movie_ids)
    assert [movie["predicted_rating"] for movie in body["recommendations"]] == [
        round(float(r), 2) for r in expected.rating
    ]


def test_recommend_absent_user_is_404(client):
    response = post(client, "recommend", {"user_id": ABSENT_USER})

    assert response.status_code == 404
    assert response.json() == {"error": f"user_id {ABSENT_USER} not found in users.dat"}


# --- /similar_movies ----------------------------------------------------------------
def test_similar_movies_from_neighbors(client, artifacts):
    response = post(client, "similar_movies", {"movie_id": MOVIE, "top_n": 3})

    assert response.status_code == 200
    body = response.json()
    item = int(artifacts.train.item_index([MOVIE])[0])
    neighbor_index = artifacts.item_neighbors["neighbor_index"][item]
    similarity = artifacts.item_neighbors["similarity"][item]
    has_neighbor = neighbor_index >= 0
    expected_ids = artifacts.train.movie_ids[neighbor_index[has_neighbor]][:3].tolist()
    assert body["movie_id"] == MOVIE
    assert body["reason"] is None
    assert [movie["movie_id"] for movie in body["similar_movies"]] == expected_ids
    assert [movie["similarity"] for movie in body["similar_movies"]] == [
        round(float(s), 4) for s in similarity[has_neighbor][:3]
    ]
    assert MOVIE not in expected_ids


def test_similar_movies_most_similar_first(client):
    movies = post(client, "similar_movies", {"movie_id": MOVIE}).json()["similar_movies"]

    similarities = [movie["similarity"] for movie in movies]
    assert similarities == sorted(similarities, reverse=True)
    assert all(movie["title"] and movie["genres"] for movie in movies)


def test_similar_movies_without_ratings_is_empty(client):
    response = post(client, "similar_movies", {"movie_id": MOVIE_WITHOUT_RATINGS})

    assert response.status_code == 200
    body = response.json()
    assert body["similar_movies"] == []
    assert body["reason"].startswith("movie_not_in_training")


def test_similar_movies_absent_movie_is_404(client):
    response = post(client, "similar_movies", {"movie_id": ABSENT_MOVIE})

    assert response.status_code == 404
    assert response.json() == {"error": f"movie_id {ABSENT_MOVIE} not found in movies.dat"}


# --- invalid requests ---------------------------------------------------------------
INVALID_BODIES = [
    # (endpoint, raw body, field named in the response)
    ("predict", b"{not json", None),
    ("predict", b"", "request"),
    ("predict", b"[]", None),
    ("predict", b'"x"', None),
    ("predict", b"null", None),
    ("predict", b'{"request": null}', "request"),
    ("predict", b'{"request": {"movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": "1", "movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": 1.0, "movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": 1.5, "movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": true, "movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": 0, "movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": -5, "movie_id": 1193}}', "request.user_id"),
    ("predict", b'{"request": {"user_id": 1, "movie_id": 123456789012345678901234567890}}', "request.movie_id"),
    ("predict", b'{"request": {"user_id": 1, "movie_id": 1193, "rating": 5}}', "request.rating"),
    ("predict", b'{"request": {"user_id": 1, "movie_id": 1193}, "debug": true}', "debug"),
    ("predict", b"\xff\xfe\x00garbage", None),
    ("predict_batch", b'{"request": {"pairs": {"user_id": 1}}}', "request.pairs"),
    ("recommend", b'{"request": {"user_id": 1, "top_n": 0}}', "request.top_n"),
    ("recommend", b'{"request": {"user_id": 1, "top_n": 101}}', "request.top_n"),
    ("recommend", b'{"request": {"user_id": 1, "top_n": null}}', "request.top_n"),
    ("similar_movies", b'{"request": {"movie_id": 0}}', "request.movie_id"),
    ("similar_movies", b'{"request": {"movie_id": 1193, "top_n": 1000}}', "request.top_n"),
    ("model_info", b"[1, 2]", None),
    ("model_info", b'{"verbose": true}', "verbose"),
]


@pytest.mark.parametrize(("endpoint", "body", "field"), INVALID_BODIES)
def test_invalid_body_is_400(client, endpoint, body, field):
    response = client.post(f"/{endpoint}", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    content = response.json()
    assert isinstance(content, dict)
    assert content["error"].startswith("invalid request: ")
    assert content["field"] == field
    assert content["errors"]
    assert content["errors"][0]["field"] == field


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/predict", content=b"user_id=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_multipart_body_is_415(client):
    response = client.post("/predict", files={"request": ("r.json", b"{}", "application/json")})

    assert response.status_code == 415
    assert isinstance(response.json()["error"], str)


def test_oversized_body_is_413(client):
    response = client.post(
        "/predict_batch", content=b" " * (5 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert "exceeds the limit" in response.json()["error"]


def test_get_on_api_is_405(client):
    response = client.get("/predict")

    assert response.status_code == 405
    assert response.json() == {"error": "GET is not allowed on /predict; use POST"}


def test_post_on_probe_is_405(client):
    response = client.post("/readyz")

    assert response.status_code == 405
    error = response.json()["error"]
    assert error.startswith("POST is not allowed on /readyz; use ")
    assert "GET" in error


def test_unknown_path_is_404(client):
    response = client.post("/predictions", json={})

    assert response.status_code == 404
    assert response.json()["error"].startswith("no endpoint at /predictions")


def test_pickle_media_type_is_415(client):
    response = client.post("/predict", content=b"x", headers={"Content-Type": "application/vnd.bentoml+pickle"})

    assert response.status_code == 415
    assert isinstance(response.json()["error"], str)


# --- logging -----------------------------------------------------------------------
def test_rejected_request_logs_one_line(client, caplog):
    with caplog.at_level(logging.WARNING):
        post(client, "recommend", {"user_id": ABSENT_USER})

    lines = [record.getMessage() for record in caplog.records if str(ABSENT_USER) in record.getMessage()]
    assert len(lines) == 1
    assert "/recommend" in lines[0]
    assert "404" in lines[0]
    assert not any(record.exc_info for record in caplog.records)


# --- start-up -----------------------------------------------------------------------
def test_missing_artifacts_stop_startup(tmp_path, monkeypatch):
    monkeypatch.setenv(ARTIFACT_DIR_ENV, str(tmp_path))

    # Instantiating the service runs __init__ as a worker does; a second to_asgi() app
    # in this process would register BentoML's request metrics twice.
    with pytest.raises(ArtifactError, match=r"user_item_matrix\.pkl.*python src/train\.py"):
        CFRecommender()


def test_deployment_hook_rejects_truncated_artifact(fixture_artifacts_dir, tmp_path, monkeypatch):
    broken = tmp_path / "outputs"
    shutil.copytree(fixture_artifacts_dir, broken)
    model_file = broken / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:100])
    monkeypatch.setenv(ARTIFACT_DIR_ENV, str(broken))

    with pytest.raises(ArtifactsUnavailable, match=r"model\.pkl is unreadable.*python src/train\.py"):
        CFRecommender.inner.check_artifacts()
