"""Collaborative-filtering recommender for MovieLens: data, models, evaluation, artifacts."""
