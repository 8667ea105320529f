"""Pretrained backbones of every modality behind one contract (see `base.Backbone`)."""

from transferkit.backbones.base import Backbone
from transferkit.backbones.registry import (
    BackboneEntry,
    create_backbone,
    list_backbones,
    register_backbone,
)

__all__ = ["Backbone", "BackboneEntry", "create_backbone", "list_backbones", "register_backbone"]
