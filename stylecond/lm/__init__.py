"""The music language model: codebook patterns, the decoder transformer, MusicLM and its size presets."""
