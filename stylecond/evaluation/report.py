"""The evaluation report: results per setting, written as ``report.json``, a ``report.md`` table and PNG plots.

Every number carries the name of the embedding (or classifier / CLAP model) that produced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylecond.evaluation.settings import Setting

__all__ = [
    "METRICS",
    "EvaluationReport",
    "MetricValue",
    "SettingResult",
    "text_adherence_metric",
    "write_report",
]

#: metric key -> (display name, direction: "higher" / "lower" is better, or "" when it depends).
METRICS: dict[str, tuple[str, str]] = {
    "fad": ("FAD", "lower"),
    "knn_common": ("KNN_common", "higher"),
    "knn_overfit_nn": ("KNN_overfit (nearest)", "lower"),
    "knn_overfit_rank": ("KNN_overfit (top-k)", "lower"),
    "clap_score": ("CLAP", "higher"),
    "text_label_accuracy": ("text label acc.", "higher"),
    "style_label_accuracy": ("style label acc.", "higher"),
    "kl_ref_gen": ("KL(ref||gen)", "lower"),
    "kl_gen_ref": ("KL(gen||ref)", "lower"),
}
#: text-adherence metrics in order of preference (the first present is plotted against β).
TEXT_ADHERENCE = ("clap_score", "text_label_accuracy", "kl_ref_gen")
_ARROW = {"higher": " ↑", "lower": " ↓", "": ""}


@dataclass(frozen=True)
class MetricValue:
    """One number and the embedding / model that produced it."""

    value: float
    embedding: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "embedding": self.embedding}


@dataclass
class SettingResult:
    """Metrics of the generations of one setting."""

    setting: Setting
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    num_generated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.setting.to_dict(),
            "label": self.setting.label,
            "num_generated": self.num_generated,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
        }


@dataclass
class EvaluationReport:
    """What :func:`~stylecond.evaluation.runner.evaluate` measured."""

    embedder: str
    results: list[SettingResult]
    references: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def metric_names(self) -> list[str]:
        present = {k for r in self.results for k in r.metrics}
        return [k for k in METRICS if k in present] + sorted(present - set(METRICS))

    def embedding_of(self, metric: str) -> str:
        names = sorted({r.metrics[metric].embedding for r in self.results if metric in r.metrics})
        return ", ".join(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "config": self.config,
            "references": self.references,
            "settings": [r.to_dict() for r in self.results],
            "notes": self.notes,
        }


def text_adherence_metric(report: EvaluationReport) -> str | None:
    """The text-adherence metric of ``report`` to plot (CLAP, else label accuracy, else KL), or None."""
    present = set(report.metric_names())
    return next((m for m in TEXT_ADHERENCE if m in present), None)


def _display(metric: str, k: Any = None) -> str:
    name, direction = METRICS.get(metric, (metric, ""))
    if metric == "knn_common" and k is not None:
        name = f"KNN_common@{k}"
    return name + _ARROW[direction]


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def to_markdown(report: EvaluationReport, *, extra_notes: list[str] | None = None) -> str:
    """A markdown table (one row per setting); each metric column names its embedding."""
    metrics = report.metric_names()
    k = report.config.get("knn_k")
    headers = ["condition", "eval_q", "β", *(f"{_display(m, k)} [{report.embedding_of(m)}]" for m in metrics)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in report.results:
        cells = [r.setting.condition, _fmt(r.setting.eval_q), _fmt(r.setting.beta)]
        cells += [f"{r.metrics[m].value:.4g}" if m in r.metrics else "–" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    cfg = ", ".join(f"{key}={_fmt(v)}" for key, v in report.config.items())
    refs = ", ".join(f"{key}={_fmt(v)}" for key, v in report.references.items())
    out = [
        "# stylecond evaluation",
        "",
        f"Embedder: `{report.embedder}` (FAD and KNN metrics).",
        "",
        f"References: {refs}",
        "",
        f"Settings: {cfg}",
        "",
        *lines,
        "",
        "↑ higher is better, ↓ lower is better; KNN_overfit measures copying of the reference track.",
    ]
    notes = [*report.notes, *(extra_notes or [])]
    if notes:
        out += ["", "Notes:", "", *(f"- {n}" for n in notes)]
    return "\n".join(out) + "\n"


def _plot_style(report: EvaluationReport, path: Path) -> bool:
    import matplotlib.pyplot as plt

    rows = [r for r in report.results if r.setting.eval_q is not None and "knn_common" in r.metrics]
    if not rows:
        return False
    series: dict[str, list[SettingResult]] = {}
    for r in rows:
        name = "style" if r.setting.condition == "style" else f"text+style β={_fmt(r.setting.beta)}"
        series.setdefault(name, []).append(r)
    text_only = [r for r in report.results if r.setting.condition == "text" and "knn_common" in r.metrics]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (name, items) in enumerate(sorted(series.items())):
        items = sorted(items, key=lambda r: int(r.setting.eval_q or 0))
        xs = [r.setting.eval_q for r in items]
        color = f"C{i}"
        ax1.plot(xs, [r.metrics["knn_common"].value for r in items], "o-", color=color, label=name)
        ax2.plot(
            xs,
            [r.metrics["knn_overfit_nn"].value for r in items],
            "o-",
            color=color,
            label=f"{name} (nearest)",
        )
        ax2.plot(
            xs,
            [r.metrics["knn_overfit_rank"].value for r in items],
            "s--",
            color=color,
            label=f"{name} (top-k)",
        )
    qs = sorted({int(r.setting.eval_q or 0) for r in rows})
    for ax, key in ((ax1, "knn_common"), (ax2, "knn_overfit_nn")):
        ax.set_xticks(qs)
        if text_only:
            ax.axhline(text_only[0].metrics[key].value, color="gray", linestyle=":", label="text only")
        ax.set_xlabel("eval_q (style codebooks)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    emb = report.embedding_of("knn_common")
    ax1.set_ylabel(f"{_display('knn_common', report.config.get('knn_k'))} [{emb}]")
    ax1.set_title("style adherence")
    ax2.set_ylabel(f"KNN_overfit ↓ [{emb}]")
    ax2.set_title("copying")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _plot_text(report: EvaluationReport, path: Path) -> bool:
    import matplotlib.pyplot as plt

    metric = text_adherence_metric(report)
    rows = [r for r in report.results if r.setting.beta is not None and metric in r.metrics]
    if metric is None or not rows:
        return False
    by_q: dict[str, list[SettingResult]] = {}
    for r in rows:
        by_q.setdefault(f"text+style q={_fmt(r.setting.eval_q)}", []).append(r)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (name, items) in enumerate(sorted(by_q.items())):
        items = sorted(items, key=lambda r: float(r.setting.beta or 0))
        ax.plot([float(r.setting.beta or 0) for r in items], [r.metrics[metric].value for r in items], "o-", color=f"C{i}",
                label=name)  # fmt: skip
    for r in report.results:
        if r.setting.condition == "text" and metric in r.metrics:
            ax.axhline(r.metrics[metric].value, color="gray", linestyle=":", label="text only")
    ax.set_xlabel("β (double-CFG text push)")
    ax.set_ylabel(f"{_display(metric)} [{report.embedding_of(metric)}]")
    ax.set_title("text adherence")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the plots that apply into ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    plots = {"style_vs_eval_q": _plot_style, "text_vs_beta": _plot_text}
    for name, plot in plots.items():
        if plot(report, out / f"{name}.png"):
            paths[name] = out / f"{name}.png"
    missing = [n for n in plots if n not in paths]
    extra = [f"plots not drawn (no data for them): {', '.join(missing)}"] if missing else []
    data = report.to_dict()
    data["notes"] = [*report.notes, *extra]
    data["plots"] = [p.name for p in paths.values()]
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(data, indent=1, ensure_ascii=False))
    paths["md"] = out / "report.md"
    paths["md"].write_text(to_markdown(report, extra_notes=extra))
    return paths
