from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from matplotlib.image import imread

from stylecond.evaluation.classifiers import CentroidClassifier
from stylecond.evaluation.references import ReferenceSet, load_references
from stylecond.evaluation.report import write_report
from stylecond.evaluation.runner import evaluate, pair_texts
from stylecond.evaluation.settings import Setting, make_settings
from stylecond.generation.settings import SamplingSettings
from stylecond.metrics.embedders.mel_stats import MelStatsEmbedder
from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

SR = 16000


def test_pair_texts_prefers_other_labels() -> None:
    assert pair_texts(["a", "b", "c"], 3, "same") == [0, 1, 2]
    assert pair_texts(["a", "a", "b", "b"], 4, "shifted") == [2, 2, 0, 0]
    assert pair_texts(None, 3, "shifted") == [1, 2, 0]
    with pytest.raises(ValueError, match="text_pairing"):
        pair_texts(None, 3, "random")


@pytest.fixture(scope="module")
def refs(synth_shards: str) -> ReferenceSet:
    return load_references(synth_shards, num_samples=4, sample_rate=SR, max_seconds=2.0, min_seconds=1.0)


@pytest.mark.slow
def test_evaluate_tiny_model_writes_report(tiny_model: Any, refs: ReferenceSet, tmp_path: Path) -> None:
    settings = make_settings(["style", "text", "text+style"], [1, 3], [1.0, 5.0])
    calls: list[tuple[str, int, int]] = []
    report = evaluate(
        tiny_model, refs, settings, MelStatsEmbedder(n_mels=32), duration=0.5, excerpt_seconds=1.0, sampling=SamplingSettings(top_k=8),
        batch_size=2, knn_k=2, chunk_seconds=0.25, audio_dir=tmp_path / "audio",
        progress=lambda label, done, total: calls.append((label, done, total)),
    )  # fmt: skip
    assert [r.setting for r in report.results] == settings
    assert calls[-1][1:] == (2 * len(settings), 2 * len(settings))
    emb = "mel_stats:16k:32"
    for r in report.results:
        assert r.num_generated == 4
        m = r.metrics
        assert m["fad"].value >= 0 and m["fad"].embedding == emb
        for key in ("knn_common", "knn_overfit_nn", "knn_overfit_rank"):
            assert 0.0 <= m[key].value <= 1.0 and m[key].embedding == emb
        assert ("text_label_accuracy" in m) == r.setting.uses_text
        assert ("style_label_accuracy" in m) == r.setting.uses_style
        for value in m.values():
            assert value.embedding  # every number names what produced it
    assert len(list((tmp_path / "audio" / "text+style_q3_b5").glob("*.wav"))) == 4
    paths = write_report(report, tmp_path / "report")
    for name in ("json", "md", "style_vs_eval_q", "text_vs_beta"):
        assert paths[name].is_file()
    for name in ("style_vs_eval_q", "text_vs_beta"):
        assert imread(paths[name]).ndim == 3


def test_evaluate_validates_settings_against_model(tiny_model: Any, refs: ReferenceSet) -> None:
    emb = MelStatsEmbedder()
    with pytest.raises(ValueError, match=r"eval_q must be in 1\.\.6"):
        evaluate(tiny_model, refs, [Setting(condition="style", eval_q=7)], emb, duration=0.2)
    with pytest.raises(ValueError, match="duration"):
        evaluate(tiny_model, refs, [Setting(condition="text")], emb, duration=0.0)


def test_evaluate_fills_default_eval_q_and_kl(tiny_model: Any) -> None:
    wav = torch.randn(2, 1, SR) * 0.1
    refs = ReferenceSet(tracks=list(wav), texts=["a", "b"], track_ids=["x", "y"], sample_rate=SR)
    fitted = NearestCentroidStyleClassifier(sample_rate=SR, n_mels=16).fit(wav, ["p", "q"])
    kl_clf = CentroidClassifier(classifier=fitted)
    report = evaluate(tiny_model, refs, [Setting(condition="style")], MelStatsEmbedder(), duration=0.2,
                      excerpt_seconds=0.5, sampling=SamplingSettings(top_k=4), knn_k=1, chunk_seconds=0.25, kl_classifier=kl_clf)  # fmt: skip
    metrics = report.results[0].metrics
    assert metrics["kl_ref_gen"].value >= 0 and metrics["kl_gen_ref"].embedding == kl_clf.name
    assert report.results[0].setting.eval_q == tiny_model.style_conditioner.eval_q
    assert any("label" in n for n in report.notes)  # no labels: accuracies skipped, and said so
    assert "text_label_accuracy" not in report.results[0].metrics
