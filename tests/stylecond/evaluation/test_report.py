from __future__ import annotations

import json
from pathlib import Path

from matplotlib.image import imread

from stylecond.evaluation.report import (
    EvaluationReport,
    MetricValue,
    SettingResult,
    text_adherence_metric,
    write_report,
)
from stylecond.evaluation.settings import Setting


def _result(setting: Setting, **values: float) -> SettingResult:
    emb = {"clap_score": "hf-clap:tiny"}
    return SettingResult(
        setting=setting,
        num_generated=4,
        metrics={k: MetricValue(v, emb.get(k, "mel_stats:16k:64")) for k, v in values.items()},
    )


def _report() -> EvaluationReport:
    knn = {"fad": 2.0, "knn_common": 0.5, "knn_overfit_nn": 0.25, "knn_overfit_rank": 0.5}
    results = [_result(Setting(condition="style", eval_q=q), **knn) for q in (1, 3)]
    results.append(_result(Setting(condition="text"), **knn, clap_score=0.3))
    results += [
        _result(Setting(condition="text+style", eval_q=q, beta=b), **knn, clap_score=0.1 * b)
        for q in (1, 3)
        for b in (1.0, 5.0)
    ]
    return EvaluationReport(
        embedder="mel_stats:16k:64", results=results, config={"knn_k": 2}, notes=["a note"]
    )


def test_write_report_files(tmp_path: Path) -> None:
    report = _report()
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["embedder"] == "mel_stats:16k:64" and data["notes"] == ["a note"]
    assert data["plots"] == ["style_vs_eval_q.png", "text_vs_beta.png"]
    ts = data["settings"][-1]
    assert ts["condition"] == "text+style" and ts["eval_q"] == 3 and ts["beta"] == 5.0
    assert ts["metrics"]["clap_score"] == {"value": 0.5, "embedding": "hf-clap:tiny"}
    md = paths["md"].read_text().splitlines()
    header = next(line for line in md if line.startswith("| condition"))
    assert "KNN_common@2 ↑ [mel_stats:16k:64]" in header and "CLAP ↑ [hf-clap:tiny]" in header
    rows = [line for line in md if line.startswith("| text") or line.startswith("| style")]
    assert len(rows) == 7 and rows[0].count("–") == 2  # β and CLAP are empty for style only
    for name in ("style_vs_eval_q", "text_vs_beta"):
        image = imread(paths[name])
        assert image.ndim == 3 and image.shape[0] > 100
    assert report.notes == ["a note"]  # writing does not change the report


def test_text_adherence_preference_and_missing_plots(tmp_path: Path) -> None:
    report = _report()
    assert text_adherence_metric(report) == "clap_score"
    only_text = EvaluationReport(
        embedder="e", results=[_result(Setting(condition="text"), fad=1.0, text_label_accuracy=0.5)]
    )
    assert text_adherence_metric(only_text) == "text_label_accuracy"
    paths = write_report(only_text, tmp_path)
    assert set(paths) == {"json", "md"}
    data = json.loads(paths["json"].read_text())
    assert data["plots"] == [] and "style_vs_eval_q, text_vs_beta" in data["notes"][-1]
    assert "style_vs_eval_q" in paths["md"].read_text()
