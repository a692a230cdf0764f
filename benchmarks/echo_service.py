"""A BentoML service with the request and response shape of ``/predict`` and no model.

``bench_service.py`` serves it beside the recommender to measure what BentoML itself
costs per request: the same body is parsed and validated into the same pydantic
models, and a constant prediction is returned.
"""

from __future__ import annotations

import bentoml

from src.cfrec.serving import Prediction, PredictRequest, request_envelope


@bentoml.service
class EchoService:
    """Echo the requested ids with a constant rating."""

    @bentoml.api(input_spec=request_envelope(PredictRequest))
    def predict(self, request: PredictRequest) -> Prediction:
        return Prediction(
            user_id=request.user_id,
            movie_id=request.movie_id,
            predicted_rating=3.0,
            rounded_rating=3,
            fallback=False,
            fallback_reason=None,
            model="echo",
        )
