"""Audio classifiers for the KL metric, named on the command line: ``centroid[:PATH]`` or ``hf:NAME_OR_PATH``.

A classifier maps waveforms ``[B, C, T]`` at its ``sample_rate`` to logits ``[B, L]`` and has a ``name``
written next to every KL number (see :class:`~stylecond.metrics.kl.KLDivergence`).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

__all__ = [
    "AudioClassifier",
    "CentroidClassifier",
    "HFAudioClassifier",
    "available_classifier_prefixes",
    "load_classifier",
    "register_classifier_loader",
]


class AudioClassifier(abc.ABC):
    """Waveforms ``[B, C, T]`` at :attr:`sample_rate` -> logits ``[B, L]``."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Input rate in Hz."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Identifier written next to the KL numbers."""

    @abc.abstractmethod
    def __call__(self, wav: Tensor) -> Tensor: ...


class CentroidClassifier(AudioClassifier):
    """A fitted :class:`NearestCentroidStyleClassifier` as logits ``-distance`` to each style centroid.

    Args:
        classifier: The fitted classifier (its ``sample_rate`` is the input rate).
        temperature: Logits are ``-distance / temperature``.
    """

    def __init__(self, *, classifier: NearestCentroidStyleClassifier, temperature: float = 1.0) -> None:
        if not classifier.fitted:
            raise ValueError("classifier must be fitted (NearestCentroidStyleClassifier.fit or .load)")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.classifier = classifier
        self.temperature = float(temperature)

    @property
    def sample_rate(self) -> int:
        return self.classifier.sample_rate

    @property
    def name(self) -> str:
        return f"centroid:logmel{self.classifier.n_mels}:{len(self.classifier.classes)}cls"

    def __call__(self, wav: Tensor) -> Tensor:
        return -self.classifier.distances(wav) / self.temperature


class HFAudioClassifier(AudioClassifier):
    """A transformers ``AutoModelForAudioClassification`` (e.g. an AST / PaSST-like tagger), loaded lazily.

    Args:
        model_name_or_path: Hub name or local directory with the model and its feature extractor.
        local_files_only: Never contact the hub.
        revision: Hub revision (branch, tag or commit) to load.
    """

    def __init__(
        self, *, model_name_or_path: str, local_files_only: bool = False, revision: str | None = None
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.local_files_only = local_files_only
        self.revision = revision
        self._model: Any = None
        self._extractor: Any = None
        self._rate: int | None = None

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        kwargs = {"local_files_only": self.local_files_only, "revision": self.revision}
        self._extractor = AutoFeatureExtractor.from_pretrained(self.model_name_or_path, **kwargs)
        self._model = AutoModelForAudioClassification.from_pretrained(
            self.model_name_or_path, **kwargs
        ).eval()
        self._rate = int(self._extractor.sampling_rate)

    @property
    def sample_rate(self) -> int:
        self.load()
        assert self._rate is not None
        return self._rate

    @property
    def name(self) -> str:
        text = os.fspath(self.model_name_or_path)
        return "hf:" + (os.path.basename(os.path.normpath(text)) if os.path.isdir(text) else text)

    @torch.no_grad()
    def __call__(self, wav: Tensor) -> Tensor:
        from stylecond.metrics.embedders.hf_audio import feature_inputs

        self.load()
        inputs = feature_inputs(self._extractor, wav, self.sample_rate)
        return self._model(**inputs).logits.float()


def _load_centroid(argument: str) -> AudioClassifier:
    if not argument:
        raise ValueError(
            "classifier spec 'centroid' needs a saved classifier: centroid:PATH "
            "(a NearestCentroidStyleClassifier.save() JSON file)"
        )
    return CentroidClassifier(classifier=NearestCentroidStyleClassifier.load(argument))


def _load_hf(argument: str) -> AudioClassifier:
    if not argument:
        raise ValueError("classifier spec 'hf:' needs a model: hf:NAME_OR_PATH")
    return HFAudioClassifier(model_name_or_path=argument)


ClassifierLoader = Callable[[str], AudioClassifier]
_LOADERS: dict[str, ClassifierLoader] = {"centroid": _load_centroid, "hf": _load_hf}


def register_classifier_loader(prefix: str, loader: ClassifierLoader) -> None:
    """Make ``PREFIX:ARGUMENT`` classifier specs call ``loader(ARGUMENT)``."""
    if not prefix.isidentifier():
        raise ValueError(f"classifier prefix must be an identifier like 'hf', got {prefix!r}")
    _LOADERS[prefix] = loader


def available_classifier_prefixes() -> tuple[str, ...]:
    return tuple(sorted(_LOADERS))


def load_classifier(spec: str) -> AudioClassifier:
    """Build the classifier named by ``spec`` (``centroid:PATH``, ``hf:NAME_OR_PATH``)."""
    prefix, _, argument = spec.strip().partition(":")
    loader = _LOADERS.get(prefix)
    if loader is None:
        raise ValueError(
            f"unknown classifier {prefix!r} in {spec!r}; valid prefixes: {', '.join(available_classifier_prefixes())}"
        )
    return loader(argument)
