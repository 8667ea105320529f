"""The prediction server's FastAPI app: `POST /predict`, `GET /health`, `GET /metadata`.

`POST /predict` takes, by Content-Type:

- `multipart/form-data`: one or more image or audio files (any field name; field `file`, repeated
  for a batch, is what the docs show);
- `image/*`, `audio/*` or `application/octet-stream`: one raw image or audio file as the body;
- `application/json`: `{"text": "…"}` / `{"texts": […]}` for text models, `{"row": {…}}` /
  `{"rows": […]}` for table models; `text/plain`: one text.

and answers `{"predictions": [{"input", "label", "probability", "top"?}, …]}` in input order
(`?top_k=3` adds the three most likely labels), the shape `transferkit predict --json` prints.

Every refusal is JSON `{"error": "…", "status": N}`: 400 for a body that cannot be parsed
(non-UTF-8 or invalid JSON, broken multipart), 413 for a limit exceeded (body size, image
pixels, audio length, batch size: each names its flag), 415 for a content type the model does
not take, 422 for an input that cannot be used, 503 with Retry-After when the queue is full or
a result is late. Uploads are decoded from memory; no path named in a request is ever opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transferkit.jsontypes import JSONObject
from transferkit.metrics import prediction_row
from transferkit.params import CACHE_DIR, ENGINE
from transferkit.serve.batcher import MicroBatcher, Overloaded
from transferkit.serve.decode import RequestError, decode_audio, decode_image, json_inputs, parse_json, upload_limits
from transferkit.serve.limits import ServeOptions
from transferkit.serve.predictor import Predictor

if TYPE_CHECKING:
    from transferkit.estimators.transfer_estimator import TransferEstimator



class BodyTooLarge(RequestError):
    def __init__(self, limit: int, received: str) -> None:
        super().__init__(413, f"request body of {received} is over the limit of {limit:,} bytes "
                              f"({limit / 1024 / 1024:g} MB, --max-body-mb); send fewer or smaller inputs")


class BodyLimit:
    """ASGI middleware: refuse a body over `max_bytes` from its Content-Length before reading it,
    and stop reading a body without one (chunked) as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _send_error(send, RequestError(400, f"Content-Length {declared[:40]!r} is not a number"))
                return
            if int(declared) > self.max_bytes:
                await _send_error(send, BodyTooLarge(self.max_bytes, f"{int(declared):,} bytes"))
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes, f"more than {self.max_bytes:,} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await _send_error(send, exc)


async def _send_error(send: Send, error: RequestError) -> None:
    import json

    body = json.dumps({"error": error.message, "status": error.status}).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


_REQUEST_BODY_DOC = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                     "description": "image or audio files (repeat the field for a batch)"}}}},
        "application/json": {"schema": {"oneOf": [
            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            {"type": "object", "properties": {"texts": {"type": "array", "items": {"type": "string"}}},
             "required": ["texts"]},
            {"type": "object", "properties": {"row": {"type": "object"}}, "required": ["row"]},
            {"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}}},
             "required": ["rows"]}]}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}


def create_app(model: TransferEstimator, options: ServeOptions | None = None, *, name: str = "model",
               precision: str | None = None, engine: str = ENGINE.default,
               cache_dir: str | Path | None = CACHE_DIR.default) -> FastAPI:
    """The FastAPI app serving `model` (a loaded bundle) under `options`; `precision` ('auto',
    'bf16', 'fp32') overrides the one `transferkit predict` would use for this bundle; `engine`
    (auto, torch, onnxruntime, openvino) is chosen per backbone at start-up, exported graphs cached
    under `cache_dir` (default: the feature cache root)."""
    from transferkit import __version__

    opts = (options or ServeOptions()).validate()
    predictor = Predictor(model, precision=precision, engine=engine, cache_dir=cache_dir)
    batcher = MicroBatcher(predictor.predict_rows, max_batch=opts.max_batch, window_s=opts.batch_window_ms / 1000.0,
                           max_queue=opts.max_queue, timeout_s=opts.timeout_s, enabled=opts.micro_batching)
    metadata = _metadata(model, predictor, opts, name, __version__)
    # decoded images are the server's largest buffers (up to --max-pixels × 3 bytes each): a few at a time
    decoders = anyio.CapacityLimiter(max(2, os.cpu_count() or 2))
    app = FastAPI(title=f"transferkit: {name}", version=__version__, lifespan=_lifespan(predictor, batcher, opts),
                  description=f"Predictions of the transferkit model '{name}' ({predictor.modality}).")
    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes)
    app.state.batcher, app.state.predictor = batcher, predictor
    _add_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, str | int]:
        """Liveness: the model is loaded and the batcher runs."""
        stats = batcher.stats
        return {"status": "ok", "queued": batcher.queued, "requests": stats.requests, "batches": stats.batches,
                "inputs": stats.inputs, "largest_batch": stats.largest_batch, "refused": stats.refused,
                "timed_out": stats.timed_out}

    @app.get("/metadata")
    async def get_metadata() -> JSONObject:
        """Labels, backbone, test metrics, engine, limits and how to send inputs."""
        return {**metadata, "engine": predictor.engine()}

    @app.post("/predict", openapi_extra={"requestBody": _REQUEST_BODY_DOC})
    async def predict(request: Request, top_k: int = Query(1, ge=1, le=10_000,
                                                           description="how many labels to return per input")
                      ) -> JSONResponse:
        """Class probabilities for one input or a batch (see the request body's content types)."""
        uploads, items, names = await _read_inputs(request, predictor, opts)
        count = len(uploads) or len(items)
        if count > opts.max_batch:
            raise RequestError(413, f"a batch of {count} inputs is over the limit of {opts.max_batch} "
                                    "(--max-batch); split it into several requests")
        if uploads:  # decoding and resizing take milliseconds: off the event loop
            names = [n for n, _ in uploads]
            samples = await anyio.to_thread.run_sync(_decode_and_prepare, predictor, opts, uploads,
                                                     limiter=decoders)
        else:  # texts and rows are checked in microseconds
            samples = [predictor.prepare(x, n) for x, n in zip(items, names, strict=True)]
        rows = await batcher.submit(samples)
        return JSONResponse({"predictions": [prediction_row(name, np.asarray(p), predictor.classes, top_k)
                                             for name, p in zip(names, rows, strict=True)]})

    return app


def _lifespan(predictor: Predictor, batcher: MicroBatcher, opts: ServeOptions
              ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: each backbone's engine chosen before the first request, the batcher run."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # before the first request: each backbone's engine, raced on generated inputs (uvicorn binds
        # its socket only after this, so no request waits on an export)
        chosen = await anyio.to_thread.run_sync(predictor.warm_up, min(8, opts.max_batch))
        for line in chosen:
            logging.getLogger("uvicorn.error").info("engine for %s", line)
        for note in predictor.notes:
            logging.getLogger("uvicorn.error").warning("%s", note)
        await batcher.start()
        try:
            yield
        finally:
            await batcher.close()  # after the server stopped taking requests: finishes the accepted ones

    return lifespan


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error the client sees is JSON {"error", "status"}; an unexpected one names no internals."""

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # the details (and the traceback) go to the server's log, not to the client
        return _error(500, f"internal error while predicting ({type(exc).__name__}); the server keeps running — "
                           "its log has the details; please report them with the input that caused it")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, "; ".join(parts) or "invalid request")


async def _read_inputs(request: Request, predictor: Predictor, opts: ServeOptions
                       ) -> tuple[list[tuple[str, bytes]], list[object], list[str]]:
    """A /predict body as (uploaded files, or JSON/text inputs with their names), by its Content-Type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    modality = predictor.modality
    uploads: list[tuple[str, bytes]] = []
    items: list[object] = []
    names: list[str] = []
    if content_type == "multipart/form-data":
        _require_files(modality, content_type)
        _check_complete_multipart(request.headers.get("content-type", ""), await request.body())
        form = await request.form(max_files=4 * opts.max_batch, max_fields=4 * opts.max_batch)
        try:
            for field_name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads.append((value.filename or field_name, await value.read()))
        finally:
            await form.close()
        if not uploads:
            raise RequestError(422, "the multipart body holds no file (or was cut off before its first file "
                                    "ended); send each input as a file field, e.g. -F file=@photo.jpg")
    elif content_type.startswith(("image/", "audio/")) or content_type == "application/octet-stream":
        _require_files(modality, content_type)
        if content_type.startswith(("image/", "audio/")) and not content_type.startswith(modality + "/"):
            raise RequestError(415, f"this model takes {modality} inputs; got a {content_type} body")
        uploads.append(("body", await request.body()))
    elif content_type == "application/json":
        items, names = json_inputs(parse_json(await request.body()), modality, columns=predictor.columns,
                                   path_columns=predictor.path_columns)
    elif content_type == "text/plain" and modality == "text":
        items, names = json_inputs({"text": _utf8(await request.body())}, modality)
    else:
        raise RequestError(415, f"Content-Type {content_type or '(none)'!r} is not taken: " + _how_to_send(modality))
    return uploads, items, names


def _check_complete_multipart(content_type: str, body: bytes) -> None:
    """A 400 for a multipart body without its closing delimiter (a cut-off upload), before parsing it."""
    boundary = ""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise RequestError(400, "multipart/form-data without a boundary parameter in its Content-Type")
    if f"--{boundary}--".encode("latin-1", "replace") not in body[-(len(boundary) + 64):]:
        raise RequestError(400, f"the multipart body is truncated: {len(body):,} bytes arrived without the "
                                "closing boundary; the upload was cut off, send it again")


def _decode_and_prepare(predictor: Predictor, opts: ServeOptions, uploads: list[tuple[str, bytes]]) -> list[object]:
    out = []
    for name, data in uploads:
        if predictor.modality == "audio":
            item: object = decode_audio(data, name, opts.max_audio_s)
        else:
            item = decode_image(data, name, opts.max_pixels, predictor.jpeg_min_size)
        out.append(predictor.prepare(item, name))
    return out


def _require_files(modality: str, content_type: str) -> None:
    if modality not in ("image", "audio"):
        raise RequestError(415, f"this {modality} model takes JSON, not {content_type}: " + _how_to_send(modality))


def _how_to_send(modality: str) -> str:
    return {
        "image": "send images as multipart/form-data (field 'file', repeated for a batch) or one raw image/* body",
        "audio": "send clips as multipart/form-data (field 'file', repeated for a batch) or one raw audio/* body",
        "text": 'send application/json {"text": "…"} or {"texts": ["…", …]} (or one text/plain body)',
        "table": 'send application/json {"row": {column: value, …}} or {"rows": [{…}, …]}',
    }[modality]


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the text body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})"
                           ) from exc


def _metadata(model: TransferEstimator, predictor: Predictor, opts: ServeOptions, name: str, version: str
              ) -> JSONObject:
    manifest = getattr(model, "manifest_", None) or {}
    metrics = {k: v for k, v in (manifest.get("metrics") or {}).items()
               if k in ("n", "accuracy", "balanced_accuracy", "macro_f1", "per_class")}
    if manifest.get("kind") == "tabular":
        backbone: JSONObject = {kind: {k: info.get(k) for k in ("name", "modality", "num_features", "weights_id")}
                         for kind, info in (manifest.get("encoders") or {}).items()}
    else:
        info = manifest.get("backbone") or {}
        backbone = {k: info.get(k) for k in ("name", "modality", "num_features", "weights_id", "weights_source")}
    return {
        "name": name,
        "labels": predictor.classes,
        "modality": predictor.modality,
        "strategy": manifest.get("strategy", "probe"),
        "backbone": backbone,
        "head": (manifest.get("head") or {}).get("spec"),
        "columns": predictor.columns or None,
        "metrics": metrics,
        "limits": upload_limits(opts),
        "micro_batching": {"enabled": opts.micro_batching, "batch_window_ms": opts.batch_window_ms,
                           "max_batch": opts.max_batch, "max_queue": opts.max_queue, "timeout_s": opts.timeout_s},
        "input": _how_to_send(predictor.modality),
        "notes": predictor.notes,
        "transferkit": version,
    }
