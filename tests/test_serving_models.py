"""Every rating model can be served: its artifacts load and each endpoint's logic returns a result."""

import pytest

from cfrec import pipeline
from cfrec.artifacts import load_artifacts
from cfrec.models import MODELS
from cfrec.serving import MovieRecommender, PredictRequest, RecommendRequest, SimilarMoviesRequest

RATING_MODELS = sorted(name for name, model in MODELS.items() if model.predicts_ratings)


@pytest.mark.parametrize("name", RATING_MODELS)
def test_every_rating_model_serves(name, fixture_data_dir, tmp_path):
    config = pipeline.TrainConfig(
        data_dir=fixture_data_dir, output_dir=tmp_path, verify_checksums=False,
        models=(name,), serve=name, rank_with=name, figures=False,
    )
    pipeline.run_training(config)
    recommender = MovieRecommender(load_artifacts(tmp_path))

    prediction = recommender.predict(PredictRequest(user_id=1, movie_id=1193))
    assert prediction.model == name
    assert 1.0 <= prediction.predicted_rating <= 5.0

    recommended = recommender.recommend(RecommendRequest(user_id=1, top_n=5))
    assert recommended.ranker == name
    assert 1 <= len(recommended.recommendations) <= 5

    similar = recommender.similar_movies(SimilarMoviesRequest(movie_id=1193, top_n=5))
    assert len(similar.similar_movies) >= 1


def test_ranking_only_model_orders_recommend(fixture_data_dir, tmp_path):
    config = pipeline.TrainConfig(
        data_dir=fixture_data_dir, output_dir=tmp_path, verify_checksums=False,
        models=("baseline", "ease"), rank_with="ease", figures=False,
    )
    record = pipeline.run_training(config)
    assert record["served_model"] == "baseline"
    assert record["ranker"] == "ease"

    artifacts = load_artifacts(tmp_path)
    recommended = MovieRecommender(artifacts).recommend(RecommendRequest(user_id=1, top_n=5))
    assert recommended.model == "baseline"
    assert recommended.ranker == "ease"
    assert "rmse" not in record["models"]["ease"]


def test_ranking_only_model_cannot_be_served(fixture_data_dir, tmp_path):
    config = pipeline.TrainConfig(
        data_dir=fixture_data_dir, output_dir=tmp_path, verify_checksums=False,
        models=("ease", "baseline"), serve="ease",
    )
    with pytest.raises(ValueError, match="does not predict ratings"):
        pipeline.run_training(config)
