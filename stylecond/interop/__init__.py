"""Interoperability with other implementations (weights conversion from transformers' MusicGen)."""
