"""Nearest-centroid style classifier on log-mel statistics: a cheap, honest style-adherence probe.

Features per clip ``[3 * n_mels]``: the mean and standard deviation over time of each log-mel bin and
the mean absolute frame-to-frame change of each bin (rhythm / onset density). They are standardised
with the training set's statistics; a clip gets the label of the nearest class centroid (Euclidean).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor

from stylecond.mel import MelSpectrogram

Wavs = Sequence[Tensor] | Tensor


class NearestCentroidStyleClassifier:
    """Label clips with the style whose mean feature vector is closest.

    Args:
        sample_rate: Sample rate in Hz of every waveform passed in (not resampled here).
        n_mels: Number of mel bins of the log-mel features.
    """

    def __init__(self, *, sample_rate: int = 16000, n_mels: int = 64) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        n_fft = 2 ** round(math.log2(0.064 * sample_rate))  # ~64 ms window
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels)
        self.classes: list[str] = []
        self.centroids: Tensor | None = None  # [N, D]
        self.mean: Tensor | None = None  # [D]
        self.std: Tensor | None = None  # [D]

    @property
    def fitted(self) -> bool:
        return self.centroids is not None

    @torch.no_grad()
    def features(self, wavs: Wavs) -> Tensor:
        """Raw (unstandardised) features ``[B, 3 * n_mels]`` of ``wavs`` (``[B, C, T]`` or a list of ``[C, T]``)."""
        items = self._as_list(wavs)
        half = self.mel.n_fft // 2
        out: list[Tensor] = []
        start = 0
        while start < len(items):  # batch runs of equal-length clips (up to 64 at a time)
            stop = start + 1
            while stop < min(len(items), start + 64) and items[stop].shape[-1] == items[start].shape[-1]:
                stop += 1
            wav = torch.stack([w.detach().float().cpu().mean(dim=0) for w in items[start:stop]])  # [b, T]
            if wav.shape[-1] <= half:
                wav = torch.nn.functional.pad(wav, (0, half + 1 - wav.shape[-1]))
            logmel = self.mel(wav)  # [b, M, F]
            if logmel.shape[-1] > 1:
                delta = logmel.diff(dim=-1).abs().mean(dim=-1)
            else:
                delta = torch.zeros_like(logmel[..., 0])
            out.append(torch.cat([logmel.mean(dim=-1), logmel.std(dim=-1, correction=0), delta], dim=-1))
            start = stop
        return torch.cat(out)

    def fit(self, wavs: Wavs, labels: Sequence[str]) -> NearestCentroidStyleClassifier:
        """Compute standardisation statistics and one centroid per label. Returns ``self``."""
        feats = self.features(wavs)
        labels = [str(label) for label in labels]
        if len(labels) != len(feats):
            raise ValueError(
                f"labels must have one entry per clip: got {len(labels)} labels for {len(feats)} clips"
            )
        self.mean = feats.mean(dim=0)
        self.std = feats.std(dim=0, correction=0).clamp_min(1e-4)
        z = (feats - self.mean) / self.std
        self.classes = sorted(set(labels))
        index = torch.tensor([self.classes.index(label) for label in labels])
        self.centroids = torch.stack([z[index == i].mean(dim=0) for i in range(len(self.classes))])
        return self

    def distances(self, wavs: Wavs) -> Tensor:
        """Euclidean distance in standardised feature space to every centroid, ``[B, len(classes)]``."""
        if self.centroids is None or self.mean is None or self.std is None:
            raise RuntimeError("NearestCentroidStyleClassifier is not fitted: call fit() or load() first")
        z = (self.features(wavs) - self.mean) / self.std
        return torch.cdist(z, self.centroids)

    def predict(self, wavs: Wavs) -> list[str]:
        """Predicted label of each clip."""
        return [self.classes[i] for i in self.distances(wavs).argmin(dim=-1).tolist()]

    def score(self, wavs: Wavs, labels: Sequence[str]) -> float:
        """Accuracy in [0, 1] of :meth:`predict` against ``labels``."""
        predicted = self.predict(wavs)
        if len(labels) != len(predicted):
            raise ValueError(
                f"labels must have one entry per clip: got {len(labels)} for {len(predicted)} clips"
            )
        return sum(p == str(t) for p, t in zip(predicted, labels)) / len(predicted)

    def save(self, path: str | PathLike[str]) -> None:
        """Write the fitted classifier to a JSON file."""
        if self.centroids is None or self.mean is None or self.std is None:
            raise RuntimeError("NearestCentroidStyleClassifier is not fitted: nothing to save")
        state = {
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "classes": self.classes,
            "centroids": self.centroids.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
        Path(path).write_text(json.dumps(state))

    @classmethod
    def load(cls, path: str | PathLike[str]) -> NearestCentroidStyleClassifier:
        """Read a classifier written by :meth:`save`."""
        try:
            state = json.loads(Path(path).read_text())
            model = cls(sample_rate=int(state["sample_rate"]), n_mels=int(state["n_mels"]))
            model.classes = [str(c) for c in state["classes"]]
            model.centroids = torch.tensor(state["centroids"], dtype=torch.float32)
            model.mean = torch.tensor(state["mean"], dtype=torch.float32)
            model.std = torch.tensor(state["std"], dtype=torch.float32)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a NearestCentroidStyleClassifier file ({err})") from err
        dim = 3 * model.n_mels
        if model.centroids.shape != (len(model.classes), dim) or model.mean.shape != (dim,):
            raise ValueError(f"{path}: centroids must be [{len(model.classes)}, {dim}] and mean/std [{dim}]")
        return model

    @staticmethod
    def _as_list(wavs: Wavs) -> list[Tensor]:
        if isinstance(wavs, Tensor):
            if wavs.dim() != 3:
                raise ValueError(
                    f"wavs must be [B, C, T] or a sequence of [C, T], got shape {tuple(wavs.shape)}"
                )
            items = list(wavs)
        else:
            items = list(wavs)
        if not items:
            raise ValueError("wavs must contain at least one clip")
        for i, wav in enumerate(items):
            if not isinstance(wav, Tensor) or wav.dim() != 2 or wav.shape[-1] == 0:
                shape = tuple(wav.shape) if isinstance(wav, Tensor) else type(wav).__name__
                raise ValueError(f"wavs[{i}] must be a non-empty [C, T] tensor, got {shape}")
            if not torch.isfinite(wav).all():
                raise ValueError(f"wavs[{i}] contains NaN or inf")
        return items
