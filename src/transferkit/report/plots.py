"""The report's figures, drawn with matplotlib's object API on the Agg canvas and returned as PNG
data URIs (so the HTML file needs nothing beside itself).

No pyplot: figures are built as `matplotlib.figure.Figure` objects, which touches no global
backend or state, so reports can be drawn from any thread (the server's, a notebook's).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from transferkit.metrics import ClassScores

DPI = 110


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_data_uri(fig: Figure) -> str:
    """A figure as a base64 PNG data URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return png_uri(buf.getvalue())


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def class_colours(classes: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per class, the same in every figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    return {c: cmap(i % cmap.N) for i, c in enumerate(classes)}


def confusion_matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Rows: true class, columns: predicted; colour is the row's share, text the count."""
    counts = np.asarray(matrix, float)
    k = len(labels)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(12.0, 2.2 + 0.45 * k)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), [_short(s) for s in labels], rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), [_short(s) for s in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8 if k > 12 else 10,
                            color="white" if share[i, j] > 0.55 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    ax.set_title("confusion matrix")
    return to_data_uri(fig)


def per_class_scores(per_class: Mapping[str, ClassScores]) -> str:
    """Precision, recall and F1 of each class as grouped horizontal bars."""
    names = list(per_class)
    k = len(names)
    fig = _figure(7.5, max(2.4, 0.42 * k + 1.2))
    ax = fig.add_subplot()
    y = np.arange(k)
    height = 0.26
    bars: tuple[tuple[Literal["precision", "recall", "f1"], str], ...] = (
        ("precision", "#4c72b0"), ("recall", "#dd8452"), ("f1", "#55a868"))
    for offset, (key, colour) in zip((-height, 0.0, height), bars, strict=True):
        ax.barh(y + offset, [per_class[n][key] for n in names], height=height, color=colour,
                label="F1" if key == "f1" else key)
    ax.set_yticks(y, [f"{_short(n)} (n={per_class[n].get('support', 0)})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score")
    fig.legend(loc="outside lower center", fontsize=8, ncols=3, frameon=False)
    ax.set_title("per-class precision, recall and F1")
    return to_data_uri(fig)


def reliability(edges: np.ndarray, accuracy: np.ndarray, confidence: np.ndarray, counts: np.ndarray,
                ece: float) -> str:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with the bins' counts."""
    fig = _figure(5.6, 5.4)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(grid[0])
    hist = fig.add_subplot(grid[1], sharex=ax)
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    filled = ~np.isnan(accuracy)
    ax.bar(centres[filled], accuracy[filled], width=width * 0.95, color="#4c72b0", edgecolor="white",
           label="accuracy in bin")
    gap_bottom = np.where(filled, np.minimum(accuracy, confidence), 0)
    gap = np.where(filled, np.abs(accuracy - confidence), 0)
    ax.bar(centres[filled], gap[filled], bottom=gap_bottom[filled], width=width * 0.95, color="#c44e52",
           alpha=0.35, hatch="//", edgecolor="#c44e52", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"reliability diagram — ECE {ece:.3f} ({len(counts)} bins)")
    hist.bar(centres, counts, width=width * 0.95, color="#8172b2")
    hist.set_xlabel("confidence (top probability)")
    hist.set_ylabel("examples")
    return to_data_uri(fig)


def embedding(coords: np.ndarray, labels: Sequence[str], wrong: np.ndarray, classes: Sequence[str], method: str,
              what: str) -> str:
    """The 2-D map coloured by true class; misclassified points are ringed in black."""
    fig = _figure(7.0, 5.6)
    ax = fig.add_subplot()
    colours = class_colours(classes)
    labels_arr = np.asarray(labels)
    size = 28 if len(coords) < 300 else 12
    for c in classes:
        mask = labels_arr == c
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=size, color=colours[c], label=_short(c), alpha=0.85,
                       linewidths=0)
    if wrong.any():
        ax.scatter(coords[wrong, 0], coords[wrong, 1], s=size * 2.2, facecolors="none", edgecolors="black",
                   linewidths=0.9, label="misclassified")
    ax.set_xticks([])
    ax.set_yticks([])
    ncols = 1 if len(classes) <= 12 else 2
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, ncols=ncols, frameon=False)
    ax.set_title(f"{method} map of the {what}\ncoloured by true class", fontsize=10)
    return to_data_uri(fig)


def training_curves(epochs: dict[str, list[tuple[float, float]]], best_epoch: int | None,
                    trainable: dict[int, int] | None = None) -> str:
    """Loss and accuracy by epoch (train and validation), the best epoch marked; trainable
    parameters per epoch when the freeze schedule changed them."""
    panels = [("loss", [k for k in epochs if k.endswith("loss")]),
              ("accuracy", [k for k in epochs if k.endswith("accuracy")])]
    panels = [(name, keys) for name, keys in panels if keys]
    show_trainable = bool(trainable) and len(set((trainable or {}).values())) > 1
    n = len(panels) + (1 if show_trainable else 0)
    from matplotlib.ticker import EngFormatter, MaxNLocator

    fig = _figure(4.2 * max(1, n), 3.4)
    for i, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, n, i + 1)
        for key in sorted(keys):
            points = epochs[key]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3,
                    label=key.replace("_", " "))
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.legend(fontsize=8)
    if show_trainable and trainable:
        ax = fig.add_subplot(1, n, n)
        xs = sorted(trainable)
        ax.step([x + 1 for x in xs], [trainable[x] for x in xs], where="post", color="#55a868")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(EngFormatter())
        ax.set_title("trainable parameters (freeze schedule)")
    return to_data_uri(fig)


def minutes_bought(timeline: Sequence[tuple[int, float, float | None]], *, offset_minutes: float = 0.0,
                   probe: tuple[float, float, str] | None = None, kept: str | None = None) -> str:
    """Validation accuracy against wall-clock time: fine-tuning epoch by epoch (`timeline`:
    [epoch, seconds, accuracy]; epoch 0 the probe head LP-FT starts from), started `offset_minutes`
    into the fit, beside the probe `--strategy auto` weighed it against (`probe`: minutes, accuracy,
    name); `kept` says which the bundle holds. Seconds on the axis when it all took under 2 minutes."""
    points = [(offset_minutes + float(s) / 60.0, 100 * float(a), int(e)) for e, s, a in timeline if a is not None]
    end = max([p[0] for p in points] + [probe[0] if probe else 0.0])
    scale, unit = (60.0, "seconds") if end < 2 else (1.0, "minutes")
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    if points:
        ax.plot([scale * p[0] for p in points], [p[1] for p in points], marker="o", markersize=4, color="#4c72b0",
                label="fine-tuning (validation, per epoch)" + (" — kept" if kept == "finetuned" else ""))
        for x, y, epoch in points:
            ax.annotate(str(epoch), (scale * x, y), textcoords="offset points", xytext=(0, 5), fontsize=7,
                        ha="center", color="#4c72b0")
    if probe is not None:
        minutes, accuracy, name = probe
        ax.plot([scale * minutes], [100 * accuracy], marker="*", markersize=13, linestyle="none", color="#dd8452",
                label=f"probe {name}" + (" — kept" if kept == "probe" else ""))
        ax.axhline(100 * accuracy, color="#dd8452", linestyle=":", linewidth=1)
    ax.set_xlabel(f"{unit} since the fit began")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("what each minute bought (numbers: epochs; 0 = the probe head it starts from)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(left=0)
    low, high = ax.get_ylim()
    ax.set_ylim(max(0.0, min(low, high - 2)), min(high, 101.0))
    return to_data_uri(fig)


def curve(x: Sequence[float], series: Mapping[str, Sequence[float]], x_label: str) -> str:
    """A generic line plot of a data-efficiency curve's columns against its first column."""
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", markersize=3, label=name)
    if x and min(x) > 0 and max(x) / max(min(x), 1e-12) >= 20:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.legend(fontsize=8)
    ax.set_title("data-efficiency curve")
    return to_data_uri(fig)


def audio_clip(wave: np.ndarray, rate: int) -> str:
    """A small waveform above its spectrogram, for one audio example."""
    fig = _figure(3.0, 1.9)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.4))
    t = np.arange(len(wave)) / max(rate, 1)
    top.plot(t, wave, linewidth=0.5, color="#4c72b0")
    top.set_yticks([])
    nfft = 512 if len(wave) >= 2048 else max(16, 2 ** int(math.log2(max(len(wave) // 4, 16))))
    bottom.specgram(wave, NFFT=nfft, Fs=rate, noverlap=nfft // 2, cmap="magma")
    bottom.set_yticks([])
    bottom.set_xlabel("seconds", fontsize=7)
    bottom.tick_params(labelsize=6)
    return to_data_uri(fig)


def _short(text: str, n: int = 18) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"
