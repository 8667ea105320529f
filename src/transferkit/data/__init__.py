"""Loading and validating a user's labelled data, and splitting it."""

from transferkit.data.dataset import LabelledData

__all__ = ["LabelledData"]
