"""The one name for data that crosses transferkit's boundary untyped: JSON (and YAML) documents.

Issue 17 asks for `Any` only at real boundaries. A JSON object parsed by `json.loads` (a bundle's
metadata, a cache manifest, an HTTP body, a `--config` file) or about to be written by `json.dumps`
(a summary, a report's data) has no static type until code reads a field of it; such values are
`JSONObject`. Data transferkit builds and reads itself is a dataclass or a `TypedDict`, not this.
"""

from __future__ import annotations

from typing import Any, TypeAlias

#: a JSON object: parsed from, or about to be written to, a JSON or YAML document
JSONObject: TypeAlias = dict[str, Any]
