"""Text, audio and multimodal-table transfer on generated data, through the CLI, with baselines beside them.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/multimodal.py [--out /tmp/tk-multimodal] [--seed 0]

Writes three datasets, each with a fixed train/val/test split, then runs `transferkit fit` on them
and prints the test accuracy of each run (the commands are printed too, to rerun one by hand):

- text: templated sentences of 3 topics; the test sentences use other templates and words than the
  training ones, so only meaning transfers. Beside MiniLM: a bag-of-words logistic regression
  trained from scratch on the same training rows.
- audio: 4 classes of synthesized sounds (whistle, hum, hiss, chirp) as WAV/FLAC/OGG at 16 and
  22.05 kHz, some stereo, in clips/{train,val,test}/<class>/; GE2E features.
- table: label = (image colour, title topic), 4 classes: image alone or title alone can only be
  right about half the time. Runs: image column alone, text column alone, both fused (concat), and
  all columns (plus numeric price and categorical shop, which carry no signal) with gated fusion.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TRAIN_TEXT = {
    "sport": ["The {a} team won the match", "A late goal decided the {a} final", "The coach praised the {a} players"],
    "cooking": ["Simmer the {a} sauce for ten minutes", "This {a} recipe needs two cups of flour",
                "Roast the {a} vegetables in the oven"],
    "finance": ["The {a} bank raised interest rates", "Shares of the {a} company fell sharply",
                "The {a} budget deficit grew again"],
}
TEST_TEXT = {
    "sport": ["The striker was injured before the {a} tournament", "Fans cheered as the {a} runners crossed the line",
              "The {a} goalkeeper saved a penalty"],
    "cooking": ["Whisk the eggs and add some {a} butter", "Season the {a} soup with salt and pepper",
                "Bake the {a} bread until golden"],
    "finance": ["Investors worry about {a} inflation and loans", "The {a} stock market closed lower today",
                "The {a} firm reported quarterly profits"],
}
WORDS = ["local", "national", "young", "old", "city", "northern", "famous", "small", "quiet", "busy"]
COLOURS = {"red": (200, 40, 40), "blue": (40, 60, 210)}
TOPICS = {"sport": TRAIN_TEXT["sport"] + TEST_TEXT["sport"], "cooking": TRAIN_TEXT["cooking"] + TEST_TEXT["cooking"]}


def cli(args: list[str], cache: Path) -> dict[str, Any]:
    """Run `transferkit ARGS --json` on the feature cache `cache`, echo the command, return the JSON summary."""
    print("$ transferkit " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "transferkit", *args, "--json", "--overwrite"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "TRANSFERKIT_CACHE": str(cache)})
    if done.returncode != 0:
        raise SystemExit(f"failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout[done.stdout.index("{"):])


def write_text(root: Path, seed: int) -> tuple[Path, float]:
    import pandas as pd
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(seed)
    rows = []
    for split, templates, n in (("train", TRAIN_TEXT, 40), ("val", TRAIN_TEXT, 10), ("test", TEST_TEXT, 40)):
        for label, options in templates.items():
            rows += [{"text": rng.choice(options).format(a=rng.choice(WORDS)), "label": label, "split": split}
                     for _ in range(n)]
    frame = pd.DataFrame(rows)
    path = root / "reviews.csv"
    frame.to_csv(path, index=False)
    train, test = frame[frame.split != "test"], frame[frame.split == "test"]
    vectorizer = CountVectorizer()
    bow = LogisticRegression(max_iter=1000).fit(vectorizer.fit_transform(train.text), train.label)
    return path, float(np.mean(bow.predict(vectorizer.transform(test.text)) == test.label.to_numpy()))


def write_audio(root: Path, seed: int) -> Path:
    import soundfile as sf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "estimators"))
    from test_audio import FORMATS, KINDS, SR, synth

    rng = np.random.default_rng(seed)
    for split, n in (("train", 24), ("val", 6), ("test", 20)):
        for kind in KINDS:
            folder = root / "clips" / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                wave = synth(kind, rng, rng.uniform(1.0, 2.0))
                if i % 4 == 3:
                    wave = np.stack([wave, 0.8 * wave], axis=1)
                sf.write(folder / f"{i:02d}.{FORMATS[i % 3]}", wave, SR)
    return root / "clips"


def write_table(root: Path, seed: int) -> Path:
    import pandas as pd
    from PIL import Image

    rng, pick = np.random.default_rng(seed), random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, split in enumerate(["train"] * 96 + ["val"] * 24 + ["test"] * 80):
        colour, topic = pick.choice(list(COLOURS)), pick.choice(list(TOPICS))
        pixels = (np.array(COLOURS[colour])[None, None, :] + rng.normal(0, 45, (48, 48, 3))).clip(0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / "img" / f"{i:03d}.jpg")
        rows.append({"image_path": f"img/{i:03d}.jpg", "title": pick.choice(TOPICS[topic]).format(a=pick.choice(WORDS)),
                     "price": round(float(rng.normal(10, 3)), 2), "shop": pick.choice(["north", "south", "east"]),
                     "category": f"{colour}-{topic}", "split": split})
    path = root / "products.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/tk-multimodal"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root, runs = args.out, args.out / "runs"
    root.mkdir(parents=True, exist_ok=True)
    # a fresh feature cache, and so no engine choice remembered from earlier runs: on a CPU with native bf16,
    # engines round bf16 differently, and features from another run's engine would change a figure here
    with tempfile.TemporaryDirectory(prefix="tk-multimodal-cache-") as cache:
        run_all(root, runs, args.seed, Path(cache))


def run_all(root: Path, runs: Path, seed: int, cache: Path) -> None:
    results: list[tuple[str, float | None, str]] = []

    reviews, bow = write_text(root, seed)
    s = cli(["fit", str(reviews), "--text-column", "text", "--label-column", "label", "--out", str(runs / "reviews")],
            cache)
    results += [(f"text: the default probe ({s['backbone']})", s["accuracy"],
                 f"{s['n_test']} test sentences, new wording"),
                ("text: bag-of-words from scratch (baseline)", bow, "same split"),
                ("text: chance", 1 / 3, "")]

    clips = write_audio(root, seed)
    s = cli(["fit", str(clips), "--modality", "audio", "--out", str(runs / "clips")], cache)
    results += [(f"audio: the default probe ({s['backbone']})", s["accuracy"], f"{s['n_test']} test clips, 4 classes"),
                ("audio: chance", 0.25, "")]

    table = write_table(root, seed)
    base = ["fit", str(table), "--label-column", "category"]
    for name, flags in (
        ("table: image column alone", ["--image-column", "image_path"]),
        ("table: text column alone", ["--text-column", "title"]),
        ("table: image + text, concat fusion", ["--image-column", "image_path", "--text-column", "title"]),
        ("table: all columns, gated fusion", ["--image-column", "image_path", "--text-column", "title",
                                               "--numeric-columns", "price", "--categorical-columns", "shop",
                                               "--fusion", "gated"]),
    ):
        s = cli([*base, *flags, "--out", str(runs / name.split(": ")[1].replace(" ", "-").replace(",", ""))], cache)
        results.append((name, s["accuracy"], f"{s['n_test']} test rows, 4 classes"))
    results.append(("table: chance", 0.25, ""))

    print("\n| run | test accuracy | note |\n|---|---|---|")
    for name, acc, note in results:
        print(f"| {name} | {'' if acc is None else f'{acc:.3f}'} | {note} |")


if __name__ == "__main__":
    main()
