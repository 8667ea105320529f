"""How fast fine-tuning trains here: a few real steps on the user's own examples, timed.

`--strategy auto` estimates the fine-tuning time from this measured rate rather than from a
constant (a constant of 15 img/s once estimated 10.5 minutes for a run that took 29).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import torch

from transferkit.backbones.contract import Backbone
from transferkit.finetune.model import FinetuneModel
from transferkit.heads import parse_head


def training_rate(backbone: Backbone, items: Sequence[object], n_classes: int, *, batch_size: int, head: str = "linear",
                  precision: str = "32-true", steps: int = 2) -> float:
    """Examples per second of fine-tuning `backbone` (forward, backward, optimizer step, data loading
    included), timed over `steps` batches of `items` after one untimed warm-up batch."""
    spec = parse_head(head)
    model = FinetuneModel(backbone, spec, n_classes)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)  # measures, learns nothing
    batch = max(1, min(batch_size, len(items)))
    chunks = [list(items[i * batch:(i + 1) * batch]) for i in range(steps + 1)]
    chunks = [c for c in chunks if c] or [list(items[:1])]
    bf16 = precision.startswith("bf16")
    timed, seen = 0.0, 0
    for i, chunk in enumerate(chunks):
        start = time.perf_counter()
        samples = []
        for x in chunk:
            with contextlib.suppress(Exception):  # an unreadable input is the data loader's to report
                samples.append(backbone.load(x))
        if not samples:
            continue
        inputs = backbone.collate(samples)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.float(), torch.zeros(len(samples), dtype=torch.long))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i > 0 or len(chunks) == 1:
            timed += time.perf_counter() - start
            seen += len(samples)
    if not seen:
        raise ValueError("no input could be read to time fine-tuning on")
    return seen / max(timed, 1e-9)
