"""A backbone's exported graph, paid once: cached on disk under `<cache root>/engines/` (or `$TRANSFERKIT_ENGINES`).

The key is everything the graph depends on: backbone name, weights sha256 (`weights_id`) and a
digest of the weights as they are in memory (a fine-tuned copy keeps its `weights_id`, not its
numbers), the preprocessing config, the graph's inputs (names, fixed sizes, dynamic axes, dtypes),
the opset and the torch version that exported it. One folder per key holds `model.onnx` and
`key.json`, each written atomically (temp file + rename), so concurrent exports of the same graph
(several extraction processes) and killed runs leave either the whole graph or nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import weakref
from pathlib import Path

import torch
from torch import nn

from transferkit.backbones.contract import Backbone, GraphParts
from transferkit.engines.onnx_graph import DEFAULT_OPSET, EXPORTERS, export_onnx
from transferkit.jsontypes import JSONObject

#: bump when the layout of exported graphs changes (old entries are then ignored, not read)
FORMAT_VERSION = 1


def engines_dir(root: str | Path | None = None) -> Path:
    """Where exported graphs (and the engine choices remembered) live: `$TRANSFERKIT_ENGINES` when set,
    whatever the feature cache (one folder shared by several caches or projects: a graph is exported
    once), else `<feature cache root>/engines`."""
    from transferkit.cache import default_cache_dir

    shared = os.environ.get("TRANSFERKIT_ENGINES")
    if shared:
        return Path(shared)
    return Path(root) / "engines" if root is not None else default_cache_dir() / "engines"


#: digests computed in this process: (tensor identities and versions) → (weak refs, digest)
_DIGESTS: dict[tuple[object, ...], tuple[list[weakref.ref[torch.Tensor]], str]] = {}


def state_digest(module: nn.Module) -> str:
    """Content hash of a module's parameters and buffers (names, dtypes, shapes, values).

    Memoised per process on the identity of each parameter/buffer object and its version counter
    (bumped by every in-place change, e.g. an optimiser step); weak references make sure an entry
    is only used while those very tensors are alive. Hashing ~100 MB of weights is paid once."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    ident = tuple((name, id(t), t._version) for name, t in tensors)
    hit = _DIGESTS.get(ident)
    if hit is not None and all(ref() is t for ref, (_, t) in zip(hit[0], tensors, strict=True)):
        return hit[1]
    state = module.state_dict()
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if len(_DIGESTS) > 64:
        _DIGESTS.clear()
    _DIGESTS[ident] = ([weakref.ref(t) for _, t in tensors], digest.hexdigest())
    return digest.hexdigest()


def graph_key(backbone: Backbone, parts: GraphParts, opset: int = DEFAULT_OPSET) -> JSONObject:
    """Everything an exported graph of `backbone` depends on (JSON-able)."""
    inputs = []
    for name, tensor in parts.example_inputs().items():
        dynamic = parts.dynamic_axes.get(name, {})
        shape = [dynamic.get(axis, int(size)) for axis, size in enumerate(tensor.shape)]
        inputs.append({"name": name, "shape": shape, "dtype": str(tensor.dtype)})
    return {
        "format": FORMAT_VERSION,
        "backbone": backbone.name,
        "weights_id": backbone.weights_id,
        "weights_digest": state_digest(parts.module),
        "graph": f"{type(parts.module).__module__}.{type(parts.module).__qualname__}",
        "preprocess": json.loads(json.dumps(backbone.preprocess_config(), default=str)),
        "inputs": inputs,
        "opset": opset,
        "exporters": list(EXPORTERS),
        "torch": torch.__version__.split("+")[0],
    }


def key_digest(key: JSONObject) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def graph_folder(backbone: Backbone, key: JSONObject, root: str | Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in backbone.name)[-80:]
    return engines_dir(root) / f"{safe}-{key_digest(key)}"


def backbone_graph(
    backbone: Backbone,
    parts: GraphParts | None = None,
    *,
    root: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    key: JSONObject | None = None,
) -> tuple[Path, bool]:
    """The ONNX file of `backbone`'s graph (exported now, or reused from the cache) and whether
    it was reused. `key`: `graph_key(backbone, parts, opset)` when the caller has it already."""
    parts = parts or backbone.graph_parts()
    key = key if key is not None else graph_key(backbone, parts, opset)
    folder = graph_folder(backbone, key, root)
    model, key_file = folder / "model.onnx", folder / "key.json"
    if model.is_file() and key_file.is_file():
        with contextlib.suppress(OSError, ValueError):  # a damaged key: export again
            if json.loads(key_file.read_text(encoding="utf-8")) == key:
                return model, True
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(parts.module, parts.example_inputs(), model, dynamic_axes=parts.dynamic_axes, opset=opset)
    write_json_atomic(key_file, key)
    return model, False


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
