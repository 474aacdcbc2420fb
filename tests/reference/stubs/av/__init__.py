"""Import-only stand-in for PyAV (audiocraft.data.audio imports it at module level)."""

__version__ = "0.0.0+stub"


def open(*args, **kwargs):  # noqa: A001
    raise RuntimeError("av stub: av.open is not available in the reference env (use soundfile)")
