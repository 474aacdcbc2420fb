"""Weight-free offline codec: residual-k-means-quantized log-mel frames, decoded by Griffin-Lim."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from stylecond.audio import check_finite, convert_channels
from stylecond.codecs.base import AudioCodec
from stylecond.mel import MelSpectrogram
from stylecond.quantization.rvq_bottleneck import RVQBottleneck

_CONFIG_FILE = "mel_codec.json"
_WEIGHTS_FILE = "mel_codec.safetensors"
_FORMAT_VERSION = 1


def _sq_dists(x: Tensor, c: Tensor) -> Tensor:
    """Squared euclidean distances ``[N, K]`` between ``x [N, D]`` and ``c [K, D]``."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(1)[None]).clamp_min(0)


def _nearest(x: Tensor, c: Tensor, chunk: int = 8192) -> Tensor:
    return torch.cat([_sq_dists(x[i : i + chunk], c).argmin(dim=1) for i in range(0, x.shape[0], chunk)])


def kmeans(x: Tensor, k: int, *, iters: int, generator: torch.Generator) -> Tensor:
    """Lloyd's k-means of ``x [N, D]`` into ``k`` centroids ``[k, D]`` (empty clusters re-seeded from data)."""
    n = x.shape[0]
    if n >= k:
        centroids = x[torch.randperm(n, generator=generator)[:k]].clone()
    else:  # fewer points than entries: duplicates, jittered so they can split
        idx = torch.randint(n, (k,), generator=generator)
        jitter = torch.randn(k, x.shape[1], generator=generator) * (1e-3 * float(x.std()) + 1e-6)
        centroids = x[idx] + jitter
    for _ in range(iters):
        assign = _nearest(x, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        n_empty = int(empty.sum())
        if n_empty:
            centroids[empty] = x[torch.randint(n, (n_empty,), generator=generator)]
    return centroids


class MelCodec(AudioCodec):
    """Offline default codec needing no pretrained weights: 16 kHz mono, 50 Hz log-mel frames.

    Each frame's log-mel vector (``n_mels`` values) is quantized by ``num_codebooks`` residual
    codebooks fitted with residual k-means on your own audio (:meth:`fit`, seconds of CPU), stored in
    an :class:`~stylecond.quantization.rvq_bottleneck.RVQBottleneck`. Decoding inverts the mel
    filterbank (pseudo-inverse, then non-negative multiplicative refinement) and recovers phase with
    Griffin-Lim (``torch.stft``/``istft``). Quality is far below EnCodec; it exists so the whole
    pipeline runs offline. Save with :meth:`save`, restore with :meth:`MelCodec.load`.

    Args:
        sample_rate: sample rate (Hz) of the audio coded.
        n_fft: FFT size of the mel analysis and of Griffin-Lim.
        hop_length: samples per frame (320 at 16 kHz = 50 Hz).
        n_mels: mel bands, the dimension quantized.
        num_codebooks: residual codebooks K.
        codebook_size: entries per codebook (the token cardinality).
        mel_floor: power floor before the log (1e-5 = -50 dB: keeps silence from dominating k-means).
        kmeans_iters: Lloyd iterations per codebook in :meth:`fit`.
        max_fit_frames: at most this many frames (randomly drawn) are used by :meth:`fit`.
        griffin_lim_iters: Griffin-Lim iterations in :meth:`decode` (0 = one inverse STFT, random phase).
        griffin_lim_momentum: fast Griffin-Lim momentum in [0, 1).
        inversion_iters: non-negative multiplicative refinement steps of the mel-to-linear inversion.
        seed: seed of the fitting subsample, k-means and Griffin-Lim's initial phase (decoding is deterministic).
        weights: directory written by :meth:`save` to load fitted codebooks from (a local path; its
            settings must equal these arguments). None leaves the codec unfitted.
    """

    fitted: Tensor
    inverse_filterbank: Tensor

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 80,
        num_codebooks: int = 4,
        codebook_size: int = 1024,
        mel_floor: float = 1e-5,
        kmeans_iters: int = 10,
        max_fit_frames: int = 20000,
        griffin_lim_iters: int = 32,
        griffin_lim_momentum: float = 0.99,
        inversion_iters: int = 20,
        seed: int = 0,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        for key, value, low in [
            ("sample_rate", sample_rate, 1),
            ("n_fft", n_fft, 8),
            ("hop_length", hop_length, 1),
            ("n_mels", n_mels, 1),
            ("num_codebooks", num_codebooks, 1),
            ("codebook_size", codebook_size, 2),
            ("max_fit_frames", max_fit_frames, 1),
        ]:
            if int(value) != value or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value}")
        if min(kmeans_iters, griffin_lim_iters, inversion_iters) < 0:
            raise ValueError("kmeans_iters, griffin_lim_iters and inversion_iters must be >= 0")
        if not 0.0 <= griffin_lim_momentum < 1.0:
            raise ValueError(f"griffin_lim_momentum must be in [0, 1), got {griffin_lim_momentum}")
        if not mel_floor > 0:
            raise ValueError(f"mel_floor must be > 0, got {mel_floor}")
        self.config: dict[str, Any] = dict(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            num_codebooks=num_codebooks,
            codebook_size=codebook_size,
            mel_floor=mel_floor,
            kmeans_iters=kmeans_iters,
            max_fit_frames=max_fit_frames,
            griffin_lim_iters=griffin_lim_iters,
            griffin_lim_momentum=griffin_lim_momentum,
            inversion_iters=inversion_iters,
            seed=seed,
        )
        self.mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, mel_floor=mel_floor
        )
        self.rvq = RVQBottleneck(
            dim=n_mels,
            num_codebooks=num_codebooks,
            codebook_size=codebook_size,
            eval_q=num_codebooks,
            kmeans_init=False,
            threshold_ema_dead_code=0.0,
            quantize_dropout=False,
        )
        for p in self.rvq.parameters():
            p.requires_grad_(False)
        inverse = torch.linalg.pinv(self.mel.filterbank.double().T).float()  # [n_freq, M]
        self.register_buffer("inverse_filterbank", inverse, persistent=False)
        self.register_buffer("fitted", torch.tensor(False))
        self.eval()
        if weights is not None:
            self.load_weights(weights)

    # ---------------------------------------------------------------- properties
    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    @property
    def channels(self) -> int:
        return 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.config["hop_length"]

    @property
    def hop_length(self) -> int:
        return int(self.config["hop_length"])

    @property
    def num_codebooks(self) -> int:
        return int(self.config["num_codebooks"])

    @property
    def cardinality(self) -> int:
        return int(self.config["codebook_size"])

    @property
    def codebooks(self) -> Tensor:
        """``[K, card, n_mels]`` log-mel codebooks."""
        return self.rvq.codebooks

    @property
    def codec_id(self) -> str:
        c = self.config
        base = f"mel:{c['sample_rate']}:{c['hop_length']}:{c['n_fft']}:{c['n_mels']}:{c['num_codebooks']}x{c['codebook_size']}"
        if not bool(self.fitted):
            return f"{base}:unfitted"
        digest = hashlib.sha256(self.codebooks.cpu().float().numpy().tobytes()).hexdigest()[:12]
        return f"{base}:{digest}"

    # ---------------------------------------------------------------- features
    def features(self, wav: Tensor) -> Tensor:
        """``wav [B, C, T]`` (mixed to mono) -> log-mel frames ``[B, ceil(T / hop), n_mels]``."""
        wav = self._check_wav(wav).float()
        n_frames = self.num_frames(wav.shape[-1])
        target = max(n_frames * self.hop_length, self.config["n_fft"] // 2 + 1)
        wav = torch.nn.functional.pad(wav[:, 0], (0, target - wav.shape[-1]))
        return self.mel(wav)[..., :n_frames].transpose(1, 2)  # [B, F, M]

    @torch.no_grad()
    def fit(self, audio: Iterable[Tensor]) -> MelCodec:
        """Fit the codebooks by residual k-means on ``audio``: tensors ``[C, T]`` at :attr:`sample_rate`.

        Returns ``self``. Raises ``ValueError`` if the audio holds no frames or non-finite samples.
        """
        frames = []
        for i, wav in enumerate(audio):
            if wav.dim() != 2 or wav.shape[-1] == 0:
                raise ValueError(
                    f"fit audio item {i} must be [C, T] with T > 0, got shape {tuple(wav.shape)}"
                )
            check_finite(wav, f"fit audio item {i}")
            frames.append(self.features(convert_channels(wav.float().cpu(), 1)[None])[0])
        if not frames:
            raise ValueError("fit audio is empty: give at least one [C, T] tensor")
        x = torch.cat(frames)  # [N, M]
        g = torch.Generator().manual_seed(int(self.config["seed"]))
        if x.shape[0] > self.config["max_fit_frames"]:
            x = x[torch.randperm(x.shape[0], generator=g)[: self.config["max_fit_frames"]]]
        residual = x.clone()
        books = []
        for _ in range(self.num_codebooks):
            c = kmeans(residual, self.cardinality, iters=int(self.config["kmeans_iters"]), generator=g)
            residual = residual - c[_nearest(residual, c)]
            books.append(c)
        self.rvq.set_codebooks(torch.stack(books).float())
        self.fitted.fill_(True)
        return self

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("MelCodec has no codebooks yet: call fit(audio) or MelCodec.load(dir) first")

    # ---------------------------------------------------------------- coding
    @torch.no_grad()
    def encode(self, wav: Tensor, *, num_codebooks: int | None = None) -> Tensor:
        """``wav [B, C, T]`` -> codes ``[B, K, ceil(T / hop)]`` long (``num_codebooks`` <= K for fewer)."""
        self._check_fitted()
        k = num_codebooks if num_codebooks is not None else self.num_codebooks
        feats = self.features(wav)
        return self.rvq.encode(feats, n_q=k).transpose(1, 2).long().contiguous()

    @torch.no_grad()
    def decode_features(self, codes: Tensor) -> Tensor:
        """``codes [B, k, F]`` (any k <= K) -> quantized log-mel frames ``[B, F, n_mels]``."""
        self._check_fitted()
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(
                f"codes must be [B, k, F] with k in 1..{self.num_codebooks}, got {tuple(codes.shape)}"
            )
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cardinality):
            raise ValueError(f"codes must lie in [0, {self.cardinality}) (cardinality)")
        return self.rvq.decode(codes.long().transpose(1, 2))

    def mel_to_magnitude(self, log_mel: Tensor) -> Tensor:
        """Log-mel frames ``[B, F, M]`` -> linear magnitude spectrogram ``[B, n_fft // 2 + 1, F]``."""
        target = log_mel.float().exp().transpose(1, 2)  # [B, M, F] mel power
        fb = self.mel.filterbank.float()  # [n_freq, M]
        power = (self.inverse_filterbank @ target).clamp_min(0) + 1e-10  # [B, n_freq, F]
        covered = fb.sum(1) > 0  # bins no filter sees (above f_max) stay near zero
        power = power * covered[None, :, None]
        for _ in range(int(self.config["inversion_iters"])):  # NMF-style: fb^T S -> target, S >= 0
            approx = torch.einsum("fm,bfn->bmn", fb, power)
            power = power * (fb @ target) / (fb @ approx).clamp_min(1e-10)
        return power.sqrt()

    def griffin_lim(self, magnitude: Tensor, length: int) -> Tensor:
        """Fast Griffin-Lim: ``magnitude [B, n_freq, F']`` -> ``wav [B, length]`` (deterministic)."""
        n_fft, hop = int(self.config["n_fft"]), self.hop_length
        window = self.mel.window.float()
        g = torch.Generator().manual_seed(int(self.config["seed"]))
        phase = torch.rand(magnitude.shape, generator=g).to(magnitude.device) * (2 * math.pi)
        angles = torch.polar(torch.ones_like(magnitude), phase)
        momentum = float(self.config["griffin_lim_momentum"])
        previous = torch.zeros_like(angles)
        pad_mode = (
            "reflect" if length > n_fft // 2 else "constant"
        )  # reflect needs more than n_fft / 2 samples

        def istft(spec: Tensor) -> Tensor:
            return torch.istft(spec, n_fft=n_fft, hop_length=hop, window=window, center=True, length=length)

        for _ in range(int(self.config["griffin_lim_iters"])):
            rebuilt = torch.stft(
                istft(magnitude * angles), n_fft=n_fft, hop_length=hop, window=window, center=True,
                pad_mode=pad_mode, return_complex=True,
            )  # fmt: skip
            angles = rebuilt - previous * (momentum / (1 + momentum))
            angles = angles / angles.abs().clamp_min(1e-16)
            previous = rebuilt
        return istft(magnitude * angles)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """``codes [B, k, F]`` (k <= K) -> ``wav [B, 1, F * hop]``."""
        log_mel = self.decode_features(codes)  # [B, F, M]
        magnitude = self.mel_to_magnitude(log_mel)
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)  # centred STFT: F * hop needs F + 1
        return self.griffin_lim(magnitude, codes.shape[-1] * self.hop_length)[:, None]

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``mel_codec.json`` (settings) and ``mel_codec.safetensors`` (codebooks) into ``directory``."""
        self._check_fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"codebooks": self.codebooks.cpu().float().contiguous()}, str(out / _WEIGHTS_FILE))
        meta = {"format_version": _FORMAT_VERSION, "codec_id": self.codec_id, "config": self.config}
        (out / _CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return out

    _STRUCTURAL = (
        "sample_rate",
        "n_fft",
        "hop_length",
        "n_mels",
        "num_codebooks",
        "codebook_size",
        "mel_floor",
    )

    @staticmethod
    def _read_meta(directory: str | Path) -> tuple[Path, dict[str, Any]]:
        """The weights path and the checked ``mel_codec.json`` of a directory written by :meth:`save`."""
        src = Path(directory)
        cfg_path, weights_path = src / _CONFIG_FILE, src / _WEIGHTS_FILE
        if not cfg_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(
                f"MelCodec directory {str(src)!r} needs {_CONFIG_FILE} and {_WEIGHTS_FILE}"
            )
        meta = json.loads(cfg_path.read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{cfg_path}: format_version must be {_FORMAT_VERSION}, got {meta.get('format_version')}"
            )
        return weights_path, meta

    def load_weights(self, directory: str | Path) -> MelCodec:
        """Load fitted codebooks written by :meth:`save`; its settings must equal this codec's."""
        weights_path, meta = self._read_meta(directory)
        cfg_path = weights_path.with_name(_CONFIG_FILE)
        saved = meta.get("config", {})
        for key in self._STRUCTURAL:
            if saved.get(key) != self.config[key]:
                raise ValueError(
                    f"{cfg_path}: {key}={saved.get(key)!r} but this MelCodec has {key}={self.config[key]!r}"
                )
        books = load_file(str(weights_path))["codebooks"]
        self.rvq.set_codebooks(books)  # validates shape [K, card, n_mels] and finiteness
        self.fitted.fill_(True)
        if meta.get("codec_id") not in (None, self.codec_id):
            raise ValueError(f"{cfg_path}: codec_id {meta['codec_id']!r} does not match the stored codebooks")
        return self

    @classmethod
    def load(cls, directory: str | Path) -> MelCodec:
        """Rebuild a codec written by :meth:`save`."""
        _, meta = cls._read_meta(directory)
        return cls(**meta["config"]).load_weights(directory)
