"""Inference engines for extraction: PyTorch, ONNX Runtime and OpenVINO.

- `export`: any `nn.Module` + example inputs → one ONNX file (atomic write; an operator ONNX
  cannot express is named in the error).
- `graphs`: a backbone's exportable core (`Backbone.graph_parts()`) exported once and cached under
  `<cache root>/engines/`, keyed by backbone name, weights, preprocessing, input shapes and opset.
- `run`: numpy-only runners of an exported graph on onnxruntime or OpenVINO. It imports neither
  torch nor the rest of transferkit, so an exported model can predict in a process without torch.
- `select`: the engines extraction runs a batch on, and the choice among them (`engine="auto"`:
  the fastest installed engine whose output agrees with PyTorch on the first batch).
- `quantize`: int8 graphs by post-training quantization (OpenVINO NNCF), an opt-in.

This package's `__init__` imports nothing heavy: `transferkit.engines.run` must stay torch-free.
"""

from __future__ import annotations

ENGINES = ("auto", "torch", "onnxruntime", "openvino")
