"""Import-only stand-in for xformers (audiocraft reference env only).

audiocraft/modules/transformer.py does `from xformers import ops` at import time and calls
`ops.unbind` / `ops.memory_efficient_attention` only when a StreamingMultiheadAttention was
built with memory_efficient=True AND the efficient-attention backend is 'xformers'
(the default backend is 'torch', which uses torch's scaled_dot_product_attention instead).
`xformers.profiler` is imported inside try/except ImportError, so it is deliberately absent.
"""

__version__ = "0.0.0+stub"
from . import ops  # noqa: E402,F401
