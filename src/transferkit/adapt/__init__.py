"""Adapting to where the model will be used: the unlabelled target inputs of another domain."""
