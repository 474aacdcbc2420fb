"""Model evaluation: generate under several settings, measure (FAD, KNN, CLAP, KL, label accuracy), report.

Library entry point: :func:`stylecond.evaluation.runner.evaluate`; command: ``stylecond evaluate``.
"""

from __future__ import annotations

from stylecond.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "evaluate": "stylecond.evaluation.runner",
    "GenerativeModel": "stylecond.evaluation.runner",
    "EvaluationReport": "stylecond.evaluation.report",
    "SettingResult": "stylecond.evaluation.report",
    "MetricValue": "stylecond.evaluation.report",
    "write_report": "stylecond.evaluation.report",
    "Setting": "stylecond.evaluation.settings",
    "make_settings": "stylecond.evaluation.settings",
    "ReferenceSet": "stylecond.evaluation.references",
    "load_references": "stylecond.evaluation.references",
    "load_embedder": "stylecond.evaluation.embedder_specs",
    "register_embedder_loader": "stylecond.evaluation.embedder_specs",
    "load_classifier": "stylecond.evaluation.classifiers",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
