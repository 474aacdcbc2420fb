"""The generation grid: style-only per eval_q, text-only, and text+style (text of another style) per beta."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from stylecond.demo.state import DemoState


@dataclass(frozen=True)
class Cell:
    """One ``generate()`` call of the grid (every reference at once): a column of the spectrogram grid."""

    setting: str  # "style", "text" or "text+style"
    eval_q: int | None = None
    beta: float | None = None

    @property
    def tag(self) -> str:
        """``style q3``, ``text`` or ``text+style b5``."""
        if self.setting == "style":
            return f"style q{self.eval_q}"
        if self.setting == "text":
            return "text"
        return f"text+style b{self.beta:g}"

    @property
    def folder(self) -> str:
        return self.tag.replace("+", "_").replace(" ", "_")


@dataclass
class Generation:
    """One generated clip and what conditioned it.

    ``audio_style`` is the style of the reference audio (None: no audio), ``text_style`` the style whose
    caption was the prompt (None: no text). ``predicted`` is filled by the report stage.
    """

    cell: Cell
    audio_style: str | None
    text_style: str | None
    text: str | None
    reference: int
    wav: Tensor  # [C, T]
    path: Path
    predicted: str | None = None


def grid_cells(state: DemoState) -> list[Cell]:
    s = state.settings
    cells = [Cell("style", eval_q=q) for q in s.eval_qs]
    cells.append(Cell("text"))
    cells += [Cell("text+style", eval_q=s.text_style_eval_q, beta=b) for b in s.betas]
    return cells


def _other_style(styles: tuple[str, ...], style: str) -> str:
    return styles[(styles.index(style) + 1) % len(styles)]


def stage_generate(state: DemoState) -> None:
    """Generate every cell for every reference clip; write ``generations/<cell>/<style>_<i>.wav``."""
    from stylecond.audio import save_audio

    model, s = state.model, state.settings
    if model is None:
        raise RuntimeError("no model: run stage_export first")
    refs = state.references
    ref_wavs = [c.audio for c in refs]
    # the prompt of a reference of style X in text+style is the caption of the same-index reference of
    # the next style, so the text always names another style than the audio
    by_style: dict[str, list[Any]] = {}
    rank = []  # position of each reference among the references of its style
    for clip in refs:
        rank.append(len(by_style.setdefault(clip.style, [])))
        by_style[clip.style].append(clip)
    other_captions = []
    for clip, r in zip(refs, rank):
        pool = by_style[_other_style(s.styles, clip.style)]
        other_captions.append(pool[r % len(pool)])
    sr = int(model.codec.sample_rate)
    cells = grid_cells(state)
    with state.progress(eta=True) as bar:
        tasks = [bar.add_task(f"generate {c.tag}", total=None) for c in cells]
        for k, (cell, task) in enumerate(zip(cells, tasks)):
            texts: list[str | None] | None = None
            style_audio: list[Tensor] | None = None
            if cell.setting in ("text", "text+style"):
                source = refs if cell.setting == "text" else other_captions
                texts = [c.caption for c in source]
            if cell.setting in ("style", "text+style"):
                style_audio = ref_wavs

            def tick(done: int, total: int, _task: Any = task) -> None:
                bar.update(_task, completed=done, total=total)

            wav = (
                model.generate(
                    texts=texts,
                    style_audio=style_audio,
                    style_sample_rate=state.sample_rate,
                    duration=s.duration,
                    eval_q=cell.eval_q,
                    excerpt_length=s.excerpt_length,
                    sampling=s.sampling.replace(cfg_coef_beta=cell.beta),
                    seed=s.seed + k,
                    progress=tick,
                )
                .float()
                .cpu()
            )
            for i, clip in enumerate(refs):
                text_clip = (
                    None if texts is None else (refs[i] if cell.setting == "text" else other_captions[i])
                )
                gen = Generation(
                    cell=cell,
                    audio_style=clip.style if style_audio is not None else None,
                    text_style=None if text_clip is None else text_clip.style,
                    text=None if texts is None else texts[i],
                    reference=i,
                    wav=wav[i],
                    path=state.out / "generations" / cell.folder / f"{clip.style}_{i}.wav",
                )
                save_audio(gen.path, wav[i].clamp(-1.0, 1.0), sr)
                state.generations.append(gen)
    for i, clip in enumerate(refs):
        save_audio(state.out / "generations" / "references" / f"{clip.style}_{i}.wav", clip.audio, sr)
