"""BentoML service for the MovieLens collaborative-filtering recommender.

Start it from the repository root after ``python src/train.py``::

    bentoml serve src.service:CFRecommender --host 127.0.0.1 --port 3000

Every endpoint takes a POST with a JSON body ``{"request": {...}}``;
``/model_info`` takes ``{}``. Artifacts load from ``outputs/`` beside ``src/``
unless ``CF_ARTIFACT_DIR`` names another directory. Each 4xx response body is a
JSON object with an ``error`` message, and for a validation error also ``field``
(the first field that failed) and ``errors`` (every failure with its field).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from http import HTTPStatus
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

from .cfrec.artifacts import DEFAULT_OUTPUT_DIR, ArtifactError, load_artifacts
from .cfrec.serving import (
    ModelInfo,
    MovieRecommender,
    NoArguments,
    PredictBatchRequest,
    PredictBatchResponse,
    Prediction,
    PredictRequest,
    RecommendRequest,
    RecommendResponse,
    SimilarMoviesRequest,
    SimilarMoviesResponse,
    request_envelope,
)

logger = logging.getLogger(__name__)

ARTIFACT_DIR_ENV = "CF_ARTIFACT_DIR"
OUTPUT_DIR_ENV = "CF_OUTPUT_DIR"  # the training pipeline's output directory, read as a fallback
PROJECT_ROOT = Path(__file__).resolve().parents[1]
API_ENDPOINTS = ("predict", "predict_batch", "recommend", "similar_movies", "model_info")
# 10,000 pairs with ML-1M ids take about 0.4 MB of JSON. A larger body than this gets 413.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Characters of a rejected request body repeated in its log line, to show the ids.
LOGGED_BODY_CHARS = 200
# Validation failures spelled out in an error message; the ``errors`` list has them all.
MAX_ERRORS_IN_MESSAGE = 5


@functools.cache
def request_counter():
    """Return the Prometheus counter of API requests by endpoint and outcome.

    It is created on first use, in the worker: BentoML 1.4.40 sets
    PROMETHEUS_MULTIPROC_DIR after importing this module, and a counter created
    at import would stay in single-process mode and never reach ``/metrics``.
    """
    import prometheus_client

    return prometheus_client.Counter(
        "cfrec_api_requests",
        "API requests by endpoint and outcome (success, invalid_request, not_found, error)",
        labelnames=["endpoint", "outcome"],
    )


class ArtifactsUnavailable(BentoMLException):
    """Raised before serving when the artifacts are missing, unreadable or of another format."""


def artifact_directory() -> Path:
    """Return ``$CF_ARTIFACT_DIR``, else ``$CF_OUTPUT_DIR``, else ``outputs/`` beside ``src/``.

    The default does not depend on the working directory, so it finds the artifacts
    both in the repository and in a built bento, where ``bentoml serve`` may start
    from anywhere.
    """
    configured = os.environ.get(ARTIFACT_DIR_ENV) or os.environ.get(OUTPUT_DIR_ENV)
    return Path(configured) if configured else PROJECT_ROOT / DEFAULT_OUTPUT_DIR


@bentoml.service(traffic={"timeout": 30})
class CFRecommender:
    """Rating predictions, recommendations and similar movies from one training run."""

    def __init__(self) -> None:
        # BentoML's server logging leaves the root logger at WARNING, which would drop
        # this package's INFO lines (the start-up summary) unless the level is set here.
        package_logger = logging.getLogger(__name__.rpartition(".")[0] or __name__)
        if package_logger.level == logging.NOTSET:
            package_logger.setLevel(logging.INFO)

        artifact_dir = artifact_directory()
        try:
            artifacts = load_artifacts(artifact_dir)
        except ArtifactError as error:
            logger.critical("CFRecommender cannot start: %s", error)
            raise

        self.recommender = MovieRecommender(artifacts)
        request_counter()
        _hide_client_error_tracebacks()
        logger.info(
            "loaded model %s from %s: %d users, %d movies, %d ratings",
            artifacts.model.name,
            artifact_dir,
            artifacts.train.n_users,
            artifacts.train.n_items,
            artifacts.train.user_items.nnz,
        )

    @bentoml.on_deployment
    def check_artifacts() -> None:
        """Stop ``bentoml serve`` with one error line, before any worker starts, if loading fails.

        BentoML runs this hook once in the serving process. Without it, BentoML 1.4.40
        restarts a worker whose ``__init__`` fails (outside containers) and logs a
        traceback each time, so the server never exits.
        """
        try:
            load_artifacts(artifact_directory())
        except ArtifactError as error:
            raise ArtifactsUnavailable(str(error)) from None

    def __is_ready__(self) -> bool:
        return getattr(self, "recommender", None) is not None

    # /predict costs about 0.15 ms of numpy work, less than a hop to BentoML's thread
    # pool, so it runs on the event loop. The heavier endpoints stay synchronous.
    @bentoml.api(input_spec=request_envelope(PredictRequest))
    async def predict(self, request: PredictRequest) -> Prediction:
        """Estimate the rating a user would give a movie."""
        return self.recommender.predict(request)

    @bentoml.api(input_spec=request_envelope(PredictBatchRequest))
    def predict_batch(self, request: PredictBatchRequest) -> PredictBatchResponse:
        """Estimate ratings for up to 10,000 (user, movie) pairs at once."""
        return self.recommender.predict_batch(request)

    @bentoml.api(input_spec=request_envelope(RecommendRequest))
    def recommend(self, request: RecommendRequest) -> RecommendResponse:
        """Recommend movies the user has not rated, best first."""
        return self.recommender.recommend(request)

    @bentoml.api(input_spec=request_envelope(SimilarMoviesRequest))
    def similar_movies(self, request: SimilarMoviesRequest) -> SimilarMoviesResponse:
        """List the movies most similar to a movie, most similar first."""
        return self.recommender.similar_movies(request)

    @bentoml.api(input_spec=NoArguments)
    def model_info(self) -> ModelInfo:
        """Describe the served model, its test metrics and its training run."""
        return self.recommender.model_info()


# --- error responses and request counting ------------------------------------------
class JsonErrorMiddleware:
    """ASGI middleware that makes every 4xx body a JSON object and counts API requests.

    BentoML 1.4.40 sends its own 4xx errors as ``[{"error": ...}]``, a validation
    error as ``{"error": "1 validation error for Input", "detail": [...]}`` and
    Starlette's unknown-route and wrong-method errors as plain text. This middleware
    rewrites each into ``{"error": message}``, adding ``field`` and ``errors`` for
    validation errors, and logs one line per rejected request. It also rejects API
    requests that are not JSON (415) or whose Content-Length exceeds
    ``MAX_BODY_BYTES`` (413) before BentoML parses them.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.api_paths = {f"/{name}": name for name in API_ENDPOINTS}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        endpoint = self.api_paths.get(scope["path"])
        if endpoint is not None and scope["method"] == "POST":
            rejection = _reject_headers(scope)
            if rejection is not None:
                status, message = rejection
                await _send_json(send, status, {"error": message})
                _record(scope, endpoint, status, message, b"")
                return

        body_start = bytearray()
        response_start: dict | None = None
        error_chunks: list[bytes] = []

        async def receive_and_keep_start():
            message = await receive()
            if message["type"] == "http.request" and len(body_start) < LOGGED_BODY_CHARS:
                body_start.extend(message.get("body", b"")[: LOGGED_BODY_CHARS - len(body_start)])
            return message

        async def send_with_json_errors(message) -> None:
            nonlocal response_start
            if message["type"] == "http.response.start":
                if 400 <= message["status"] < 500:
                    response_start = message  # held back until the body is rewritten
                    return
                if endpoint is not None:
                    request_counter().labels(endpoint=endpoint, outcome=_outcome(message["status"])).inc()
                await send(message)
                return
            if response_start is None or message["type"] != "http.response.body":
                await send(message)
                return

            error_chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = response_start["status"]
            content = normalise_error_body(b"".join(error_chunks), status, scope, response_start.get("headers", []))
            await _send_json(send, status, content, _kept_headers(response_start))
            _record(scope, endpoint, status, content["error"], bytes(body_start))

        try:
            await self.app(scope, receive_and_keep_start, send_with_json_errors)
        except Exception:
            if endpoint is not None:
                request_counter().labels(endpoint=endpoint, outcome="error").inc()
            raise


def normalise_error_body(body: bytes, status: int, scope, headers: list) -> dict:
    """Turn a 4xx body from BentoML or Starlette into ``{"error": ...}``, plus ``field`` and ``errors``."""
    try:
        content = json.loads(body)
    except ValueError:  # plain text, e.g. Starlette's "Not Found"
        content = None

    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
        content = content[0]
    if isinstance(content, dict) and isinstance(content.get("detail"), list):
        return _validation_error(content["detail"])
    if isinstance(content, dict) and isinstance(content.get("error"), str):
        return {"error": content["error"]}

    text = body.decode("utf-8", "replace").strip() if content is None else ""
    if status == HTTPStatus.NOT_FOUND:
        return {"error": f"no endpoint at {scope['path']}; the API endpoints are {', '.join(API_ENDPOINTS)}"}
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = dict(headers).get(b"allow", b"").decode("latin-1") or "another method"
        return {"error": f"{scope['method']} is not allowed on {scope['path']}; use {allowed}"}
    return {"error": text or _status_phrase(status)}


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _validation_error(errors: list) -> dict:
    failures = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        location = ".".join(str(part) for part in error.get("loc", ()))
        failures.append({"field": location or None, "message": str(error.get("msg", "invalid value"))})

    if not failures:
        return {"error": "invalid request", "field": None, "errors": []}

    described = "; ".join(
        f"{failure['field']}: {failure['message']}" if failure["field"] else failure["message"]
        for failure in failures[:MAX_ERRORS_IN_MESSAGE]
    )
    if len(failures) > MAX_ERRORS_IN_MESSAGE:
        described += f"; and {len(failures) - MAX_ERRORS_IN_MESSAGE} more"
    return {"error": f"invalid request: {described}", "field": failures[0]["field"], "errors": failures}


def _reject_headers(scope) -> tuple[int, str] | None:
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type not in ("application/json", ""):
        return (
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"unsupported Content-Type {media_type!r}; send the body as application/json",
        )

    length = headers.get("content-length", "0")
    if not length.isdigit():
        return HTTPStatus.BAD_REQUEST, f"invalid Content-Length {length!r}"
    if int(length) > MAX_BODY_BYTES:
        return (
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"request body of {int(length):,} bytes exceeds the limit of {MAX_BODY_BYTES:,} bytes",
        )
    return None


def _kept_headers(response_start: dict) -> list:
    dropped = {b"content-length", b"content-type"}
    return [(name, value) for name, value in response_start.get("headers", []) if name.lower() not in dropped]


async def _send_json(send, status: int, content: dict, headers: list | None = None) -> None:
    body = json.dumps(content).encode()
    all_headers = [
        *(headers or []),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


def _record(scope, endpoint: str | None, status: int, error: str, body_start: bytes) -> None:
    if endpoint is not None:
        request_counter().labels(endpoint=endpoint, outcome=_outcome(status)).inc()
    logger.warning(
        "rejected %s %s with %d: %s; body starts %r",
        scope["method"],
        scope["path"],
        status,
        error,
        body_start.decode("utf-8", "replace"),
    )


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    if status == HTTPStatus.NOT_FOUND:
        return "not_found"
    if status < 500:
        return "invalid_request"
    return "error"


class _ClientErrorFilter(logging.Filter):
    """Drop BentoML's traceback records for client errors, which the middleware logs in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            return False
        return not (isinstance(error, BentoMLException) and int(error.error_code) < 500)


def _hide_client_error_tracebacks() -> None:
    # BentoML 1.4.40 logs every handled API exception, 4xx included, with a traceback
    # through this module's logger.
    bentoml_logger = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(existing, _ClientErrorFilter) for existing in bentoml_logger.filters):
        bentoml_logger.addFilter(_ClientErrorFilter())


CFRecommender.add_asgi_middleware(JsonErrorMiddleware)
