"""Head specs (`heads.head_spec`): parsing, errors that point at the problem, modules of the right shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferkit.errors import ConfigError
from transferkit.heads import build_head, parse_head


def test_keras_spec_builds_the_keras_layers() -> None:
    spec = parse_head("flatten, dense:1024:relu, dropout:0.5, dense:N:softmax")
    assert spec.uses_feature_map
    head = build_head(spec, 512 * 7 * 7, 5)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(25088, 1024), (1024, 5)]
    assert head(torch.zeros(2, 512, 7, 7)).shape == (2, 5)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("dense:abc", "units 'abc'"),
        ("dense:64:relu, dropout:1.5, dense:N", "dropout rate"),
        ("dense:64:wiggle, dense:N", "unknown activation 'wiggle'"),
        ("conv:3, dense:N", "unknown layer"),
        ("dense:64, flatten, dense:N", "flatten"),
        ("dense:64:relu, dense:10", "N units"),
        ("dropout:0.1", "no dense layer"),
    ],
)
def test_bad_spec_errors_show_where(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_head(text)
    assert fragment in str(info.value)


def test_error_points_at_the_failing_layer() -> None:
    with pytest.raises(ConfigError) as info:
        parse_head("dense:64:relu, dropout:x, dense:N")
    message = str(info.value)
    assert "layer 2 'dropout:x'" in message and "^" in message


