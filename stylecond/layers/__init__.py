"""Transformer building blocks shared by the LM and the style encoder: attention, layers, KV cache."""
