"""`TransferClassifier`: feature transfer — a frozen pretrained backbone and a head on its features.

    clf = TransferClassifier(backbone="efficientnet_lite0").fit(paths, labels)
    clf.predict(paths); clf.predict_proba(paths); clf.save("runs/x"); TransferClassifier.load("runs/x")

`fit` computes the frozen backbone's features once (cached on disk, so a second fit on the same
data extracts nothing), then trains the head on them, choosing its regularisation on a
validation split carved from the training data when none is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypedDict

import numpy as np
import torch

from transferkit.adapt import (
    MIN_TARGET_INPUTS,
    Alignment,
    AlignModule,
    BlockAlignment,
    BlockAlignModule,
    alignment_from_tensors,
)
from transferkit.adapt.align import aligned_with
from transferkit.adapt.latent import LatentAlignment, LatentAlignModule
from transferkit.adapt.record import AdaptationRecord, LatentDomainsRecord
from transferkit.adapt.record import from_json as adaptation_from_json
from transferkit.adapt.record import to_json as adaptation_json
from transferkit.backbones.contract import Backbone, same_weights
from transferkit.backbones.spec import BackboneSpec, parse_backbone
from transferkit.cache import FeatureCache, resolve_cache
from transferkit.data.dataset import LabelledData
from transferkit.errors import BackboneError, BundleError, ConfigError, DataError, check_is_fitted
from transferkit.estimators.transfer_estimator import (
    Data,
    FitReport,
    Inputs,
    Labels,
    Params,
    TransferEstimator,
    as_labelled_data,
)
from transferkit.features import ExtractOptions, Features, extract_features, release_engines
from transferkit.heads import (
    FittedProbe,
    HeadChoice,
    HeadSpec,
    Rows,
    build_head,
    class_weights,
    parse_head,
    row_moments,
    train_probe,
)
from transferkit.jsontypes import JSONObject
from transferkit.params import (
    ADAPT_BATCH,
    ADAPT_METHOD,
    AUGMENT,
    BACKBONE,
    BATCH_SIZE,
    CACHE_DIR,
    CLASS_WEIGHT,
    DEVICE,
    ENGINE,
    HEAD,
    LONG_TEXT,
    PRECISION,
    PROGRESS,
    SEED,
    STRICT,
    TTA,
    VAL_FRACTION,
    WEIGHTS,
)
from transferkit.runtime import trim_heap


class ViewsChoice(TypedDict, total=False):
    """Whether the probe kept its augmented views (`_choose_views`): how many, why, the validation
    accuracy with and without them, and with a target DEV's estimates and the criterion used."""

    used: int
    why: str
    val_accuracy_with_views: float | None
    val_accuracy_without: float | None
    dev: dict[str, dict[str, float]]
    #: with a target, what DEV took (adaptation's cost): its importance weights, and scoring the two probes'
    #: held-out validation probabilities (their C grids kept them: nothing is refitted)
    dev_seconds: float
    criterion: str


class ProbeViews(TypedDict, total=False):
    """With `augment`: how many views the head trained on, and the views' choice."""

    augmented_views: int
    views: ViewsChoice


class ProbeChoice(HeadChoice, ProbeViews, total=False):
    """The probe's head choice with `augment`: the head's, then its views'."""


class TransferClassifier(TransferEstimator):
    """Frozen pretrained backbone + a head trained on its cached features.

    `cache_dir=None` uses the default cache folder; `cache_dir=False` disables the cache.
    `long_text="chunk"` (text backbones) embeds overlapping windows of long texts and averages them.
    `augment=K` also trains the head on the features of K augmented views of each training input
    (images: crops, flips, colour jitter, grayscale; audio: speed, pitch, noise, gain — see
    `data.augment`); `tta=K` averages the predictions over the input and K views of it.

    Domain adaptation: `fit(X, y, X_target=T)` also extracts the features of T, unlabelled inputs
    from where the model will be used, and fits the alignment `adapt_method` names (`adapt.align`:
    auto = per-domain standardisation, standardize, coral, self-training, mcc, none) that maps the
    target's features into the training data's; the head is trained on the training data's own
    features (T never enters labels, validation or the head's choice of settings; self-training and
    mcc then fine-tune it on T's aligned features, without labels) and the alignment
    sits in front of it in every prediction (`scoring_head`), in the bundle and in the export.
    `adapt_batch=True` (a runtime setting: `load(path, adapt_batch=True)`) instead standardises each
    batch given to `predict_proba` with its own statistics (test-time adaptation, at least
    `adapt.MIN_BATCH_INPUTS` inputs).
    """

    kind: ClassVar[str] = "probe"
    adapts_to_target: ClassVar[bool] = True
    _runtime_params: ClassVar[frozenset[str]] = frozenset(
        {"cache_dir", "progress", "device", "batch_size", "precision", "engine", "tta", "adapt_batch"})

    backbone_: Backbone

    def __init__(
        self,
        backbone: str = BACKBONE.default,
        *,
        weights: str | None = WEIGHTS.default,
        head: str = HEAD.default,
        class_weight: str = CLASS_WEIGHT.default,
        val_fraction: float = VAL_FRACTION.default,
        seed: int = SEED.default,
        batch_size: int = BATCH_SIZE.default,
        precision: str = PRECISION.default,
        engine: str = ENGINE.default,
        long_text: str = LONG_TEXT.default,
        augment: int = AUGMENT.default,
        tta: int = TTA.default,
        cache_dir: str | Path | bool | FeatureCache | None = CACHE_DIR.default,
        strict: bool = STRICT.default,
        progress: bool = PROGRESS.default,
        device: str | None = DEVICE.default,
        adapt_method: str = ADAPT_METHOD.default,
        adapt_batch: bool = ADAPT_BATCH.default,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.head = head
        self.class_weight = class_weight
        self.val_fraction = val_fraction
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.engine = engine
        self.long_text = long_text
        self.augment = augment
        self.tta = tta
        self.cache_dir = cache_dir
        self.strict = strict
        self.progress = progress
        self.device = device
        self.adapt_method = adapt_method
        self.adapt_batch = adapt_batch

    def _validate_combination(self) -> None:
        if parse_head(self.head).uses_feature_map:
            raise ConfigError(
                f"head '{self.head}' starts with flatten, which needs the unpooled feature map: use "
                "--strategy finetune (with --freeze frozen for pure feature transfer)"
            )

    @property
    def modality_(self) -> str:
        check_is_fitted(self, "backbone_")
        return str(self.backbone_.modality)

    def _cache(self) -> FeatureCache | None:
        return resolve_cache(self.cache_dir)

    def _options(self) -> ExtractOptions:
        return ExtractOptions(batch_size=self.batch_size, precision=self.precision, engine=self.engine,
                              progress=self.progress,
                              device=self.device)

    def _create_backbone(self) -> Backbone:
        from transferkit.backbones import build_backbone, get_entry

        kwargs: Params = {"seed": self.seed} if self.weights == "random" else {}
        if self.long_text != "truncate":
            entry = get_entry(self.backbone)
            if entry is not None and entry.modality != "text":
                raise ConfigError(f"long_text applies to text backbones; '{self.backbone}' is {entry.modality}")
            kwargs["long_text"] = self.long_text
        return build_backbone(self._backbone_spec(self.backbone), weights=self.weights, **kwargs)

    # -- fit ----------------------------------------------------------------------------------------
    def fit(
        self,
        X: Data,
        y: Labels | None = None,
        *,
        X_val: Inputs | None = None,
        y_val: Labels | None = None,
        X_target: Inputs | None = None,
    ) -> TransferClassifier:
        """Extract features of `X` (and `X_val`), train the head, and return `self`.

        Without `X_val`, a stratified `val_fraction` of `X` selects the head's settings; the final
        linear head is then refitted on all of `X`. `X_target`: unlabelled inputs of the domain the
        model will be used in, to align to (`adapt_method`); only their features are read.
        """
        self.validate()
        spec = parse_head(self.head)
        torch.manual_seed(self.seed)
        if (getattr(self, "_backbone_key", None) != (self.backbone, self.weights, self.long_text)
                or getattr(self, "backbone_", None) is None):  # or let go by a fit that failed in its head
            self.backbone_ = self._create_backbone()
            self._backbone_key = (self.backbone, self.weights, self.long_text)
        modality = self.backbone_.modality
        data = as_labelled_data(X, y, "training data", modality=modality)
        data.validate_for_training()
        val = as_labelled_data(X_val, y_val, "validation data", modality=modality) if X_val is not None else None
        values, ok, labels, report = self._training_features(data, val)
        n_train = len(data.items)
        train_ok = np.flatnonzero(ok[:n_train])
        kept = data.subset(train_ok.tolist())
        kept.validate_for_training()
        self.classes_ = np.array(kept.classes)
        index = {c: i for i, c in enumerate(self.classes_)}
        tr_idx, va_idx = self._head_rows(labels, ok, n_train, train_ok, index, given_val=val is not None)
        y_all = np.array([index.get(label, -1) for label in labels])
        # without views or a target nothing extracts after this: the engine kept for the next extraction call and
        # the backbone are let go until the head has trained (`_let_go`, `_train_head`)
        blocks, released = self._let_go(done := not self.augment and X_target is None)
        # the training domain: train + val, no views (its statistics a block of rows at a time: a float64
        # copy of every feature would double a wide matrix, e.g. hashed n-grams, for two vectors)
        self.source_mean_, self.source_std_ = row_moments((Rows(values, np.flatnonzero(ok)),))
        self.target_skipped_: dict[str, str] = {}
        target = self._target_features(X_target, report) if X_target is not None else None
        plain_idx = tr_idx
        if self.augment:
            values, y_all, tr_idx = self._with_views(data, train_ok, tr_idx, values, y_all, report)
        # the rows as indices into the features, read a block at a time (no copy of the training rows); without
        # views to weigh or a target to adapt to, nothing reads `values` after this: the head may write its
        # standardised rows over them (`heads.Rows.disposable`; `values` is this fit's own array)
        probe = self._train_head(spec, values, y_all, tr_idx, va_idx, blocks, disposable=done, released=released)
        views_choice: ViewsChoice | None = None
        if self.augment:
            probe, tr_idx, views_choice = self._choose_views(spec, probe, values, y_all, plain_idx, tr_idx, va_idx,
                                                             target)
        head: torch.nn.Module = probe.head
        self.align_: AlignModule | BlockAlignModule | LatentAlignModule | None = None
        self.adaptation_: AdaptationRecord | None = None
        if target is not None:
            source = values[np.flatnonzero(ok)].astype(np.float64)  # rows before the views: the same
            head = self._adapt(spec, head, source, y_all[np.flatnonzero(ok)], target, values, y_all, tr_idx, va_idx,
                               report)
            self._diagnose_shift(source, target, [labels[i] for i in np.flatnonzero(ok)], views_choice)
        self.head_ = head
        # the kept head's validation probabilities before its refit on train + validation (what DEV scores
        # when `--strategy auto --adapt-to` weighs this probe against fine-tuning); in memory, not saved
        self.heldout_val_proba_ = probe.val_proba
        report.n_train, report.n_val = len(tr_idx), len(va_idx)
        report.head_choice, report.class_weighted = probe.choice, probe.class_weighted
        if self.augment:
            views: ProbeViews = {"augmented_views": report.augmented if len(tr_idx) > len(plain_idx) else 0}
            if views_choice:
                views["views"] = views_choice
            choice: ProbeChoice = {**probe.choice, **views}
            report.head_choice = choice
        self.fit_report_ = report
        self.train_class_counts_ = kept.class_counts()
        return self

    def _let_go(self, done: bool) -> tuple[list[int], tuple[JSONObject, str] | None]:
        """The backbone's feature blocks (what the head needs of it); with `done` (nothing extracts after the
        training features: no views, no target) the engine kept for the next extraction call and the backbone
        are let go here, until the head has trained, and what loads the backbone again the same is returned
        (its preprocessing and weights id, `_train_head`).

        What the fit then holds no more, through the source's moments and the head's training: a compiled
        model (MiniLM's on OpenVINO: ~180 MB, half of it its memory-mapped blob; kept through the head, a text
        fit of 3,000 texts had peaked at 1.76 GB instead of 1.55) and the network's weights (MiniLM's: a
        memory-mapped file, 87 MB of a text fit's RSS). Loading the backbone again takes ~0.1 s (its weight
        file's hash is remembered in the process)."""
        blocks = self.backbone_.feature_blocks()
        if not done:
            return blocks, None
        release_engines()
        released = self.backbone_.preprocess_config(), self.backbone_.weights_id
        del self.backbone_
        trim_heap()  # what the network held on the heap (its tokenizer, buffers) goes back too
        return blocks, released

    def _train_head(self, spec: HeadSpec, values: np.ndarray, y_all: np.ndarray, tr_idx: np.ndarray,
                    va_idx: np.ndarray, blocks: list[int], *, disposable: bool,
                    released: tuple[JSONObject, str] | None) -> FittedProbe:
        """The head trained on rows `tr_idx` of `values` (`disposable`: written over, `heads.Rows`), its settings
        chosen on rows `va_idx`, without the engine kept for the next extraction call; then the backbone
        `_let_go` `released` loaded again: the same name, weights (checked) and preprocessing, torch's random
        state left as it was."""
        if released is None:  # views or a target were extracted after the training features: let go now
            release_engines()
        try:
            return train_probe(spec, Rows(values, tr_idx, disposable), y_all[tr_idx], Rows(values, va_idx, disposable),
                               y_all[va_idx], len(self.classes_), class_weight=self.class_weight, seed=self.seed,
                               blocks=blocks)
        finally:
            if released is not None:
                config, weights_id = released
                with torch.random.fork_rng():
                    backbone = self._create_backbone()
                if backbone.weights_id != weights_id:
                    raise BackboneError(f"the weights of '{backbone.name}' changed while the head trained (sha256 "
                                        f"{weights_id[:12]}… then {backbone.weights_id[:12]}…); fit again")
                backbone.apply_preprocess_config(config)
                self.backbone_ = backbone

    def _training_features(self, data: LabelledData, val: LabelledData | None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, FitReport]:
        """The features of the training then the validation inputs (zeros where unreadable), which are
        readable, their labels, and the fit report started with the extraction's counts. Raises
        `DataError` when none can be read, or any cannot with `strict`."""
        items = list(data.items) + (list(val.items) if val else [])
        # before the features exist: a text backbone tokenises every input again for these counts, which at
        # the end of the fit ran beside the training features and what the head left (1.55 GB, 3,000 texts)
        notes = self.backbone_.input_notes(data.items)
        feats = extract_features(self.backbone_, items, options=self._options(), cache=self._cache(),
                                 description=f"features ({self.backbone_.name})")
        report = FitReport(extracted=feats.extracted, cached=feats.cached, precision=feats.precision,
                           extract_seconds=feats.seconds, engine=feats.engine, engine_notes=list(feats.notes),
                           notes=notes)
        report.skipped = {str(items[i]): reason for i, reason in feats.failed.items()}
        if feats.failed and self.strict:
            first = next(iter(report.skipped.values()))
            raise DataError(f"{len(feats.failed)} input(s) could not be read (--strict): {first}")
        if not feats.ok.any():
            raise DataError(f"{data.source}: none of the {len(items)} inputs could be read; first error: "
                            f"{next(iter(report.skipped.values()), 'unknown')}")
        labels = np.array([str(v) for v in data.labels] + ([str(v) for v in val.labels] if val else []))
        if feats.ok.all():  # the usual case: the features as they are, not a copy
            return feats.values, feats.ok, labels, report
        values = np.zeros((len(items), feats.values.shape[1]), np.float32)
        values[feats.ok] = feats.values
        return values, feats.ok, labels, report

    def _head_rows(self, labels: np.ndarray, ok: np.ndarray, n_train: int, train_ok: np.ndarray,
                   index: dict[str, int], *, given_val: bool) -> tuple[np.ndarray, np.ndarray]:
        """The rows the head trains on and those that choose its settings: the readable training and
        validation rows, or without validation data a stratified `val_fraction` of the training rows."""
        if given_val:
            val_ok = np.flatnonzero(ok[n_train:]) + n_train
            unknown = sorted({labels[i] for i in val_ok} - set(index))
            if unknown:
                raise DataError(f"validation data has classes not in the training data: {unknown[:5]}")
            return train_ok, val_ok
        from transferkit.data.split import split_indices

        parts = split_indices([labels[i] for i in train_ok], val_fraction=self.val_fraction,
                              test_fraction=0.0, seed=self.seed)
        return train_ok[parts["train"]], train_ok[parts["val"]]

    def _target_features(self, X_target: Inputs, report: FitReport) -> np.ndarray:
        """The features of the target's inputs (cached like any others); unreadable ones skipped and named."""
        items = list(X_target)
        feats = extract_features(self.backbone_, items, options=self._options(), cache=self._cache(),
                                 description=f"target features ({self.backbone_.name})")
        report.extracted += feats.extracted
        report.cached += feats.cached
        report.extract_seconds += feats.seconds
        self.target_skipped_ = {str(items[i]): reason for i, reason in feats.failed.items()}
        if feats.failed and self.strict:
            first, reason = next(iter(self.target_skipped_.items()))
            raise DataError(f"{len(feats.failed)} target input(s) could not be read (--strict): {first}: {reason}")
        if not feats.ok.any():
            raise DataError(f"none of the {len(items)} target inputs could be read; first error: "
                            f"{next(iter(self.target_skipped_.values()), 'none given')}")
        return np.asarray(feats.values, np.float64)

    def _adapt(self, spec: HeadSpec, head: torch.nn.Module, source: np.ndarray, source_labels: np.ndarray,
               target: np.ndarray, values: np.ndarray, y_all: np.ndarray, tr_idx: np.ndarray, va_idx: np.ndarray,
               report: FitReport) -> torch.nn.Module:
        """Fit the alignment of the target to the source; with self-training, retrain the head on
        source + confidently pseudo-labelled target. Returns the head to keep."""
        import time

        from transferkit.adapt import auto_outcome, fit_alignment, resolve_method, self_train

        started = time.perf_counter()
        method = resolve_method(self.adapt_method)
        why = _WHY[self.adapt_method]
        alignment = fit_alignment(source, target, "coral" if method == "self-training" else method, seed=self.seed,
                                  blocks=self.backbone_.feature_blocks())
        record = AdaptationRecord(method=self.adapt_method, why=why, target_inputs=len(target),
                                  target_skipped=len(getattr(self, "target_skipped_", {})))
        if method == "auto" and alignment is not None:  # the James-Stein factors, whether it moves anything or not
            record["statistics"] = dict(alignment.info or {})
            moved, record["why"] = auto_outcome(alignment)
            method = alignment.method if moved else "none"
            alignment = alignment if moved else None
        kept: Alignment | BlockAlignment | LatentAlignment | None = alignment
        if method != "none" and self.adapt_method == "auto" and alignment is not None:
            kept, record["latent_domains"] = self._latent_or_whole(head, source, source_labels, target, alignment)
            method = kept.method
        record["applied"] = method
        if kept is not None:
            self.align_ = kept.module().eval()
            record["alignment"] = kept.method
            record["statistics"] = {**record.get("statistics", {}), **(kept.info or {})}
        if method == "mcc" and alignment is not None:  # James-Stein's map applied whatever the test said
            from transferkit.adapt.mcc import mcc_head

            weights = class_weights(y_all[tr_idx], len(self.classes_), self.class_weight)
            rows = np.concatenate([tr_idx, va_idx])
            head = mcc_head(head, values[rows], y_all[rows], alignment.apply(target), seed=self.seed,
                            class_weight=weights)
        if method == "self-training" and alignment is not None:
            weighted = class_weights(y_all[tr_idx], len(self.classes_), self.class_weight) is not None

            def fit(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
                fitted = train_probe(spec, x, y, values[va_idx], y_all[va_idx], len(self.classes_),
                                     class_weight=self.class_weight if weighted else "none", seed=self.seed,
                                     blocks=self.backbone_.feature_blocks())

                def predict(z: np.ndarray) -> np.ndarray:
                    return fitted.proba(z)

                predict.head = fitted.head  # type: ignore[attr-defined]
                return predict

            predict, st = self_train(fit, values[tr_idx], y_all[tr_idx], alignment.apply(target))
            head = predict.head  # type: ignore[attr-defined]
            record["pseudo_labelled_per_round"] = st.per_round
        record["seconds"] = round(time.perf_counter() - started, 3)
        self.adaptation_ = record
        return head

    def _latent_or_whole(self, head: torch.nn.Module, source: np.ndarray, source_labels: np.ndarray,
                         target: np.ndarray, unweighted: Alignment | BlockAlignment
                         ) -> tuple[Alignment | BlockAlignment | LatentAlignment, LatentDomainsRecord]:
        """`auto` with a shift detected: one alignment for the whole target or the target's latent domains
        each aligned on its own (`adapt.latent`): the latent domains when they make the head's predictions on
        the target carry significantly more information (`information_gain`; both maps match the source's
        moments as they are).
        One alignment kept, its moments are matched to the source's re-weighted to the target's class
        proportions, estimated by EM (`adapt.priors`): information favours balanced predictions, so it
        weighs the domains, not the proportions. `unweighted`: auto's map, already fitted. Returns the one kept
        and what was weighed."""
        from transferkit.adapt.align import shrunk_map
        from transferkit.adapt.latent import ALPHA, fit_latent_alignment, information_gain, information_maximization
        from transferkit.adapt.priors import class_prior_weights, em_priors, total_variation

        def proba(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                logits = head(torch.from_numpy(np.asarray(x, np.float32)))
            return torch.softmax(logits.double(), dim=1).numpy()

        blocks = self.backbone_.feature_blocks()
        prior = em_priors(proba(target), proba(source).mean(axis=0))
        weights = class_prior_weights(source_labels, prior)
        whole = shrunk_map(source, target, blocks, weights)
        prior_shift = round(total_variation(prior, np.bincount(source_labels, minlength=len(prior))
                                            / len(source_labels)), 4)
        latent = fit_latent_alignment(source, target, blocks, seed=self.seed)
        if latent is None:
            return whole, {"kept": False, "target_prior_shift": prior_shift,
                           "why": f"the target is too small to hold two domains of {MIN_TARGET_INPUTS} inputs each"}

        p_whole, p_latent = proba(unweighted.apply(target)), proba(latent.apply(target))
        im_whole, im_latent = information_maximization(p_whole), information_maximization(p_latent)
        _, lower = information_gain(p_latent, p_whole, seed=self.seed)
        better = lower > 0
        record: LatentDomainsRecord = {
            "kept": bool(better), "target_prior_shift": prior_shift, "domains": int(latent.info["domains"]),
            "information_whole": round(im_whole, 4),
            "information_latent": round(im_latent, 4),
            "information_gain_lower": round(lower, 4),
            "why": (f"{latent.info['domains']} latent target domains (k-means, k by silhouette), each aligned on "
                    f"its own, {'kept' if better else 'not kept'}: the head's predictions on the target carry "
                    f"{im_latent:.3f} nats of information against {im_whole:.3f} with one alignment for the whole "
                    f"target (information maximization; the gain's bootstrap {100 * (1 - ALPHA):.0f}% lower bound "
                    f"{lower:+.3f}: {'above' if better else 'not above'} zero)")}
        return (latent if better else whole), record

    def _diagnose_shift(self, source: np.ndarray, target: np.ndarray, labels: list[object],
                        views_choice: ViewsChoice | None) -> None:
        """How far the target is, before and after the alignment (`adapt.shift`): kept in `adaptation_`,
        with what DEV's choice of the views took (made only because a target was given: adaptation's cost)."""
        import time

        from transferkit.adapt.shift_diagnostic import shift_record

        if self.adaptation_ is None:
            return
        started = time.perf_counter()
        aligned = aligned_with(self.align_, target) if self.align_ is not None else None
        self.adaptation_["shift"] = shift_record(source, target, labels, target_aligned=aligned,
                                                 alignment=self.adaptation_.get("alignment"), seed=self.seed)
        self.adaptation_["shift_seconds"] = round(time.perf_counter() - started, 3)
        if views_choice and "dev_seconds" in views_choice:
            self.adaptation_["views_seconds"] = views_choice["dev_seconds"]

    def scoring_head(self) -> torch.nn.Module:
        check_is_fitted(self, "head_")
        align = getattr(self, "align_", None)
        return self.head_ if align is None else torch.nn.Sequential(align, self.head_)

    def _choose_views(self, spec: HeadSpec, probe: FittedProbe, values: np.ndarray, y_all: np.ndarray,
                      plain_idx: np.ndarray, views_idx: np.ndarray, va_idx: np.ndarray,
                      target: np.ndarray | None) -> tuple[FittedProbe, np.ndarray, ViewsChoice]:
        """Views are a choice: the head is also fitted without them, on the features the fit extracted
        anyway, and the better on validation is kept — by validation accuracy (a tie keeps no views: the
        simpler model), or, with a target, by DEV's estimate of the target accuracy (`adapt.dev`, on one
        set of importance weights for both). A head that records no validation score (an MLP) keeps them."""
        from transferkit.heads import chosen_val_accuracy

        n_views, choice = self.augment, probe.choice
        if not len(va_idx) or chosen_val_accuracy(choice) is None:
            return probe, views_idx, {"used": n_views, "why": "asked for; no validation score to weigh them "
                                      "against (no validation split, or a head that records none)"}
        plain = train_probe(spec, Rows(values, plain_idx), y_all[plain_idx], Rows(values, va_idx), y_all[va_idx],
                            len(self.classes_), class_weight=self.class_weight, seed=self.seed,
                            blocks=self.backbone_.feature_blocks())
        plain_choice = plain.choice
        acc_views, acc_plain = chosen_val_accuracy(choice), chosen_val_accuracy(plain_choice)
        record: ViewsChoice = {"val_accuracy_with_views": acc_views, "val_accuracy_without": acc_plain}
        if target is not None:
            import time

            from transferkit.adapt.dev import dev_score, importance_weights

            started = time.perf_counter()
            w = importance_weights(values[plain_idx], target, values[va_idx], seed=self.seed)
            scores = {}
            # each probe's validation probabilities from its own C grid: the probe at the C it chose, fitted
            # on its training rows only (its head was then refitted on train + validation)
            for name, fitted in (("with_views", probe), ("without", plain)):
                assert fitted.val_proba is not None  # a linear head with validation rows (checked above)
                scores[name] = dev_score(fitted.val_proba, y_all[va_idx], w)
            record["dev"] = {k: v.to_dict() for k, v in scores.items()}
            record["dev_seconds"] = round(time.perf_counter() - started, 3)
            a, b = scores["with_views"], scores["without"]
            use = (round(a.risk, 6), round(a.log_loss, 6)) < (round(b.risk, 6), round(b.log_loss, 6))
            record["criterion"] = "DEV (importance-weighted validation with a control variate; You et al. 2019)"
            record["why"] = (f"{n_views if use else 0} views: DEV's estimate of the target accuracy "
                             f"{100 * a.accuracy:.1f}% with views, {100 * b.accuracy:.1f}% without (a tie: DEV "
                             f"log-loss {a.log_loss:.3f} / {b.log_loss:.3f})")
        else:
            use = float(acc_views or 0.0) > float(acc_plain or 0.0)
            record["criterion"] = "validation accuracy (a tie keeps no views)"
            record["why"] = (f"{n_views if use else 0} views: validation accuracy {100 * float(acc_views or 0):.1f}% "
                             f"with views, {100 * float(acc_plain or 0):.1f}% without")
        record["used"] = n_views if use else 0
        return (probe, views_idx, record) if use else (plain, plain_idx, record)

    def _with_views(self, data: LabelledData, train_ok: np.ndarray, tr_idx: np.ndarray, values: np.ndarray,
                    y_all: np.ndarray, report: FitReport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training rows plus the features of `augment` views of each (readable) training input."""
        from transferkit.data.augment import views_of

        chosen = [int(i) for i in tr_idx if i < len(data.items)]
        views = views_of([data.items[i] for i in chosen], self.backbone_.modality, self.augment, self.seed)
        feats = extract_features(self.backbone_, views, options=self._options(), cache=self._cache(),
                                 description=f"features of {self.augment} augmented view(s) ({self.backbone_.name})")
        report.extracted += feats.extracted
        report.cached += feats.cached
        labels = np.tile(y_all[chosen], self.augment)[feats.ok]
        start = len(values)
        values = np.concatenate([values, feats.values.astype(np.float32)])
        y_all = np.concatenate([y_all, labels])
        report.augmented = int(feats.ok.sum())
        return values, y_all, np.concatenate([tr_idx, np.arange(start, len(values))])

    # -- predict ------------------------------------------------------------------------------------
    def features(self, X: Inputs, *, cache: bool = True) -> Features:
        """The backbone's features; with `tta=K`, those of the input and of K views side by side."""
        check_is_fitted(self, "head_")
        store = self._cache() if cache else None
        items = list(X)
        feats = extract_features(self.backbone_, items, options=self._options(), cache=store, description="features")
        if not self.tta or not items:
            return feats
        from transferkit.data.augment import views_of

        views = extract_features(self.backbone_, views_of(items, self.backbone_.modality, self.tta, self.seed),
                                 options=self._options(), cache=store, description="test-time views")
        full = np.zeros((len(items) * self.tta, self.backbone_.num_features), np.float32)
        full[views.ok] = views.values
        per_item = full.reshape(self.tta, len(items), -1)[:, feats.ok]  # a view that fails: the original stands in
        ok_views = views.ok.reshape(self.tta, len(items))[:, feats.ok]
        per_item = np.where(ok_views[..., None], per_item, feats.values[None])
        values = np.concatenate([feats.values, *per_item], axis=1)
        return Features(values=values, ok=feats.ok, failed=feats.failed, extracted=feats.extracted + views.extracted,
                        cached=feats.cached + views.cached, precision=feats.precision,
                        seconds=feats.seconds + views.seconds)

    def proba_from_features(self, values: np.ndarray) -> np.ndarray:
        """Class probabilities; with test-time views, the mean over the input and its views; with
        `adapt_batch`, after standardising the batch with its own statistics."""
        check_is_fitted(self, "head_")
        x = np.asarray(values, np.float32)
        width = self.backbone_.num_features
        chunks = np.split(x, 1 + self.tta, axis=1) if self.tta and x.shape[1] == width * (1 + self.tta) else [x]
        head = self._batch_head(chunks[0]) if self.adapt_batch else self.scoring_head()
        with torch.no_grad():
            return np.mean([torch.softmax(head(torch.from_numpy(np.ascontiguousarray(c))).float(), dim=1).numpy()
                            for c in chunks], axis=0)

    def _batch_head(self, values: np.ndarray) -> torch.nn.Module:
        """The head behind a standardisation of this batch into the training domain's statistics."""
        from transferkit.adapt import batch_standardizer

        mean, std = getattr(self, "source_mean_", None), getattr(self, "source_std_", None)
        if mean is None or std is None:
            raise ConfigError("--adapt-batch needs the training data's feature statistics, which this bundle "
                              "does not have (it was saved before transferkit stored them): fit it again")
        return torch.nn.Sequential(batch_standardizer(values, mean, std).module().eval(), self.head_)

    def summary(self) -> JSONObject:
        out = {**super().summary(), "backbone": self.backbone_.name, "head": self.head,
               "class_weighted": self.fit_report_.class_weighted,
               "extract_seconds": round(self.fit_report_.extract_seconds, 2)}
        adaptation: AdaptationRecord | None = getattr(self, "adaptation_", None)
        if adaptation:
            out["adaptation"] = adaptation_json(adaptation)
        return out

    # -- persistence --------------------------------------------------------------------------------
    def _manifest(self) -> JSONObject:
        report = self.fit_report_
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("cache_dir", "progress", "device", "adapt_batch")}
        return {
            "strategy": "probe",
            "backbone": {**self.backbone_.describe(), "weights_source": self.weights,
                         "random_seed": self.seed if self.weights == "random" else None},
            "head": {"spec": parse_head(self.head).text, "in_features": self.backbone_.num_features,
                     "choice": report.head_choice},
            "training": {**params, "n_train": report.n_train, "n_val": report.n_val,
                         "class_counts": self.train_class_counts_, "class_weighted": report.class_weighted,
                         "skipped": len(report.skipped), "precision": report.precision},
            **({"adaptation": adaptation_json(self.adaptation_)} if self.adaptation_ else {}),
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The head's tensors, the alignment's (`align.*`) and the training domain's feature statistics
        (`domain.*`, read by `--adapt-batch`)."""
        tensors = super()._tensors()
        align = getattr(self, "align_", None)
        if align is not None:
            tensors.update({f"align.{k}": v.contiguous() for k, v in align.state_dict().items()})
        if getattr(self, "source_mean_", None) is not None:
            tensors["domain.source_mean"] = torch.from_numpy(np.asarray(self.source_mean_, np.float32))
            tensors["domain.source_std"] = torch.from_numpy(np.asarray(self.source_std_, np.float32))
        return tensors

    def _card_facts(self, manifest: JSONObject) -> tuple[str, list[str], str, str]:
        return (f"transferkit model: {manifest['backbone']['name']} + {manifest['head']['spec']} head",
                [f"- strategy: {manifest['strategy']} (frozen backbone, head trained on its features)",
                 f"- backbone weights sha256: `{manifest['backbone']['weights_id']}`"],
                "examples",
                "Load with `transferkit predict <this folder> FILES…` or `transferkit.load(<this folder>)`.")

    @classmethod
    def _restore(cls, manifest: JSONObject, tensors: dict[str, torch.Tensor], path: Path,
                 overrides: Params) -> TransferClassifier:
        info = manifest["backbone"]
        training = manifest.get("training", {})
        saved = {k: training[k] for k in ("head", "class_weight", "val_fraction", "seed", "batch_size", "precision",
                                          "strict", "long_text", "augment", "tta", "adapt_method") if k in training}
        # the estimator's own `backbone` parameter when recorded: a concatenation's members keep their
        # `@weights` there (`a@random+b@random`), which the backbone's display name drops
        # (used only where it names the same networks as the manifest's backbone, so an edited name is still
        # caught by the weights check below)
        recorded = _recorded_backbone(training.get("backbone"), info["name"])
        name = info["name"] if recorded is None else str(recorded)
        clf = cls(backbone=name, weights=info.get("weights_source"), **{**saved, **overrides})
        if recorded is not None:
            clf.adopt_backbone_specs(recorded)
        clf.backbone_ = clf._create_backbone()
        clf._backbone_key = (clf.backbone, clf.weights, clf.long_text)
        if not same_weights(info["weights_id"], clf.backbone_):
            raise BundleError(
                f"'{path}' was trained on backbone '{info['name']}' with weights sha256 {info['weights_id'][:12]}…, "
                f"but the weights on this machine are {clf.backbone_.weights_id[:12]}…; install the same weights")
        clf.backbone_.apply_preprocess_config(info["preprocess"])
        labels = manifest["labels"]
        head = build_head(parse_head(manifest["head"]["spec"]), int(manifest["head"]["in_features"]), len(labels))
        head.load_state_dict({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")})
        clf.head_ = head.eval()
        align = alignment_from_tensors(tensors)  # None in a bundle fitted without --adapt-to
        if align is not None and align.dim != int(manifest["head"]["in_features"]):
            raise BundleError(f"'{path}': its alignment takes {align.dim} features, its head "
                              f"{manifest['head']['in_features']}; the bundle was edited or damaged")
        clf.align_ = align.eval() if align is not None else None
        clf.adaptation_ = adaptation_from_json(manifest.get("adaptation"))
        if "domain.source_mean" in tensors:
            clf.source_mean_ = tensors["domain.source_mean"].double().numpy()
            clf.source_std_ = tensors["domain.source_std"].double().numpy()
        clf.classes_ = np.array(labels)
        clf.fit_report_ = FitReport(n_train=training.get("n_train", 0), n_val=training.get("n_val", 0),
                                    head_choice=manifest["head"].get("choice", {}))
        clf.train_class_counts_ = training.get("class_counts", {})
        return clf


#: why each --adapt-method was applied, for the fit summary
_WHY = {
    "auto": "auto = per-domain standardisation with the shift shrunk by James-Stein toward no shift, for the whole "
            "target or for each of its latent domains, whichever gives the head's predictions more information "
            "(see transferkit.adapt.align and transferkit.adapt.latent)",
    "coral": "asked for: CORAL (covariances shrunk by Ledoit-Wolf)",
    "standardize": "asked for: per-domain standardisation (means and spreads per feature)",
    "self-training": "asked for: CORAL, then class-balanced self-training on confident target pseudo-labels",
    "mcc": "asked for: per-domain standardisation shrunk by James-Stein, then the linear head fine-tuned with "
           "Minimum Class Confusion on the aligned target (transferkit.adapt.mcc)",
    "none": "asked for: no alignment (target features read, nothing changed)",
}


def _recorded_backbone(recorded: object, name: str) -> BackboneSpec | None:
    """A bundle's recorded `backbone` parameter, parsed, when it names the networks of the manifest's backbone
    `name` (its parts' `@weights` aside); None when it does not (an edited or older manifest)."""
    if not isinstance(recorded, str):
        return None
    try:
        spec = parse_backbone(recorded)
    except ConfigError:
        return None
    return spec if spec.kind in ("model", "concat") and str(spec.networks()) == name else None
