"""Demo report: style accuracy of the generations (nearest-centroid classifier), tables and a PNG grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.table import Table
from torch import Tensor

from stylecond.demo.grid import Cell, grid_cells
from stylecond.demo.state import DemoState


@dataclass
class Row:
    """One table row: the fraction of clips classified as the audio's style and as the text's style."""

    condition: str
    eval_q: str
    beta: str
    n: int
    to_audio: float | None
    to_text: float | None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _fraction(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def stage_classify(state: DemoState) -> list[Row]:
    """Fit the classifier on held-out real clips; label references, codec round trips and generations."""
    from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

    if state.codec is None:
        raise RuntimeError("no codec: run stage_codec first")
    clf = NearestCentroidStyleClassifier(sample_rate=state.sample_rate)
    clf.fit([c.audio for c in state.heldout], [c.style for c in state.heldout])
    refs = state.references
    labels = [c.style for c in refs]
    with torch.no_grad():
        ref_wav = torch.stack([c.audio for c in refs])  # [B, 1, T]
        roundtrip = state.codec.decode(state.codec.encode(ref_wav))[..., : ref_wav.shape[-1]]
    state.roundtrips = list(roundtrip.float().cpu())
    rows = [
        Row("real references", "–", "–", len(refs), _fraction([p == t for p, t in zip(clf.predict(ref_wav), labels)]), None),
        Row("codec round trip", "–", "–", len(refs), _fraction([p == t for p, t in zip(clf.predict(state.roundtrips), labels)]), None),
    ]  # fmt: skip
    gens = state.generations
    for gen, label in zip(gens, clf.predict([g.wav for g in gens])):
        gen.predicted = label
    for cell in grid_cells(state):
        mine = [g for g in gens if g.cell == cell]
        to_audio = _fraction([g.predicted == g.audio_style for g in mine if g.audio_style is not None])
        to_text = _fraction([g.predicted == g.text_style for g in mine if g.text_style is not None])
        q = "–" if cell.eval_q is None or cell.setting == "text" else str(cell.eval_q)
        beta = "–" if cell.beta is None else f"{cell.beta:g}"
        rows.append(Row(cell.setting, q, beta, len(mine), to_audio, to_text))
    state.summary["style_accuracy"] = [row.__dict__ for row in rows]
    state.summary["chance"] = 1 / len(state.settings.styles)
    state.summary["classifier"] = {
        "kind": "nearest-centroid on log-mel statistics (stylecond.metrics.style_classifier)",
        "fitted_on": f"{len(state.heldout)} held-out real clips ({len(state.settings.styles)} styles)",
    }
    state.summary["predictions"] = [
        {"setting": g.cell.tag, "audio_style": g.audio_style, "text_style": g.text_style,
         "predicted": g.predicted, "wav": str(g.path.relative_to(state.out))}
        for g in gens
    ]  # fmt: skip
    return rows


def accuracy_table(state: DemoState, rows: list[Row]) -> Table:
    chance = 1 / len(state.settings.styles)
    table = Table(title=f"style of the generations (classifier on real clips; chance {chance:.2f})")
    for name, justify in [("condition", "left"), ("eval_q", "right"), ("β", "right"), ("n", "right"),
                          ("→ audio's style", "right"), ("→ text's style", "right")]:  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.condition, r.eval_q, r.beta, str(r.n), _fmt(r.to_audio), _fmt(r.to_text))
    return table


def markdown_table(state: DemoState, rows: list[Row]) -> str:
    s = state.settings
    lines = [
        f"Styles: {', '.join(s.styles)} (chance {1 / len(s.styles):.2f}). Fraction of generations the "
        "nearest-centroid classifier (fitted on held-out real clips) assigns to the style of the reference "
        "audio / of the text's caption. text+style pairs each reference with the caption of another style.",
        "",
        "| condition | eval_q | β | n | → audio's style | → text's style |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.condition} | {r.eval_q} | {r.beta} | {r.n} | {_fmt(r.to_audio)} | {_fmt(r.to_text)} |"
        for r in rows
    ]
    lines += ["", "Per style (style and text+style: → audio's style; text: → text's style):", ""]
    cells = grid_cells(state)
    lines.append("| style | " + " | ".join(c.tag for c in cells) + " |")
    lines.append("|---" * (len(cells) + 1) + "|")
    for style in s.styles:
        values = []
        for cell in cells:
            mine = [g for g in state.generations if g.cell == cell]
            if cell.setting == "text":
                hits = [g.predicted == g.text_style for g in mine if g.text_style == style]
            else:
                hits = [g.predicted == g.audio_style for g in mine if g.audio_style == style]
            values.append(_fmt(_fraction(hits)))
        lines.append(f"| {style} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def stage_report(state: DemoState) -> None:
    """Classify, print the rich table, write ``results.md``, ``generations.png`` and ``summary.json``."""
    rows = stage_classify(state)
    state.console.print(accuracy_table(state, rows))
    (state.out / "results.md").write_text(markdown_table(state, rows))
    plot_grid(state, state.out / "generations.png")
    state.write_summary()
    state.console.print(f"wrote {state.out / 'results.md'}, {state.out / 'generations.png'}, summary.json")


def plot_grid(state: DemoState, path: Path) -> None:
    """Rows: the first reference of each style; columns: reference, codec round trip, then every cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylecond.mel import MelSpectrogram

    mel = MelSpectrogram(sample_rate=state.sample_rate, n_mels=64)
    first: dict[str, int] = {}
    for i, clip in enumerate(state.references):
        first.setdefault(clip.style, i)
    cells: list[Cell | str] = ["reference", "codec round trip", *grid_cells(state)]
    fig, axes = plt.subplots(
        len(first), len(cells), figsize=(1.9 * len(cells), 1.3 * len(first) + 0.8), squeeze=False
    )
    for row, (style, index) in enumerate(first.items()):
        for col, cell in enumerate(cells):
            ax = axes[row][col]
            note = ""
            if isinstance(cell, str):
                wav: Tensor = state.references[index].audio if col == 0 else state.roundtrips[index]
                title = cell
            else:
                gen = next(g for g in state.generations if g.cell == cell and g.reference == index)
                wav, title = gen.wav, cell.tag
                note = f"→ {gen.predicted}" + (
                    f"\ntext: {gen.text_style}" if gen.cell.setting == "text+style" else ""
                )
            with torch.no_grad():
                spec = mel(wav.float().reshape(1, -1))[0].numpy()
            ax.imshow(spec, origin="lower", aspect="auto", vmin=spec.max() - 12, vmax=spec.max())
            ax.set_xticks([])
            ax.set_yticks([])
            if note:
                ax.text(0.02, 0.97, note, transform=ax.transAxes, fontsize=6, va="top", color="white")
            if row == 0:
                ax.set_title(title, fontsize=8)
            if col == 0:
                ax.set_ylabel(style, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
