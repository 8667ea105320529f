"""Pretrained backbones of every modality behind one contract (see `base.Backbone`).

Importing this package registers the families (one module each) into the registry, which itself
imports none of them.
"""

from transferkit.backbones import audio, image, scratch, text, views, yamnet  # noqa: F401  (each registers)
from transferkit.backbones.contract import Backbone
from transferkit.backbones.registry import (
    BackboneEntry,
    build_backbone,
    create_backbone,
    get_entry,
    list_backbones,
    register_backbone,
    register_resolver,
)

__all__ = [
    "Backbone",
    "BackboneEntry",
    "build_backbone",
    "create_backbone",
    "get_entry",
    "list_backbones",
    "register_backbone",
    "register_resolver",
]
