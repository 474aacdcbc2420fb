from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylecond.evaluation.classifiers import CentroidClassifier, HFAudioClassifier, load_classifier
from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

SR = 16000


def _fitted() -> NearestCentroidStyleClassifier:
    wavs = torch.cat([0.01 * torch.randn(3, 1, SR), torch.randn(3, 1, SR)])
    return NearestCentroidStyleClassifier(sample_rate=SR, n_mels=16).fit(wavs, ["quiet"] * 3 + ["loud"] * 3)


def test_centroid_spec_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "clf.json"
    _fitted().save(path)
    clf = load_classifier(f"centroid:{path}")
    assert (
        isinstance(clf, CentroidClassifier) and clf.sample_rate == SR and clf.name == "centroid:logmel16:2cls"
    )
    logits = clf(torch.cat([0.01 * torch.randn(1, 1, SR), torch.randn(1, 1, SR)]))
    assert logits.shape == (2, 2)
    loud = clf.classifier.classes.index("loud")
    assert logits.argmax(dim=-1).tolist() == [1 - loud, loud]


def test_specs_and_errors(tmp_path: Path) -> None:
    hf = load_classifier("hf:some/tagger")
    assert isinstance(hf, HFAudioClassifier) and hf.name == "hf:some/tagger"
    with pytest.raises(ValueError, match="valid prefixes: centroid, hf"):
        load_classifier("passt:x")
    with pytest.raises(ValueError, match="centroid:PATH"):
        load_classifier("centroid")
    with pytest.raises(ValueError, match="not a NearestCentroidStyleClassifier"):
        load_classifier(f"centroid:{tmp_path / 'missing.json'}")
    with pytest.raises(ValueError, match="fitted"):
        CentroidClassifier(classifier=NearestCentroidStyleClassifier())
