"""The evaluation loop: generate under each setting, measure, return an :class:`EvaluationReport`.

For every setting, each reference ``i`` gives one generation: its middle ``excerpt_seconds`` as the style
condition and a text (its own, or with ``text_pairing="shifted"`` in ``text+style`` the text of another
reference, preferably of another style label, so text and style pull apart). Metrics:

- ``fad``: FAD between chunks of the generations and chunks of the reference tracks (``embedder``);
- ``knn_common`` / ``knn_overfit_nn`` / ``knn_overfit_rank``: against a database of the reference tracks'
  chunks (track id = shard key), queries = the conditioning excerpt and the generation (``embedder``);
- ``clap_score`` (with ``clap``): generation vs the text it was given;
- ``text_label_accuracy`` / ``style_label_accuracy`` (when every reference has a style label): a
  :class:`~stylecond.metrics.style_classifier.NearestCentroidStyleClassifier` fitted on the references
  labels the generations; target = the label of the text's / the excerpt's reference;
- ``kl_ref_gen`` / ``kl_gen_ref`` (with ``kl_classifier``): label distributions of each generation vs its
  target reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from stylecond.audio import crop_or_pad, resample, save_audio
from stylecond.evaluation.classifiers import AudioClassifier
from stylecond.evaluation.references import ReferenceSet
from stylecond.evaluation.report import EvaluationReport, MetricValue, SettingResult
from stylecond.evaluation.settings import Setting
from stylecond.generation.settings import SamplingSettings
from stylecond.metrics.clap_score import CLAPScore
from stylecond.metrics.embedders.base import AudioEmbedder
from stylecond.metrics.fad import FrechetAudioDistance
from stylecond.metrics.kl import KLDivergence
from stylecond.metrics.knn import KNNStyleMetrics
from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

__all__ = ["GenerativeModel", "evaluate", "pair_texts"]

Progress = Callable[[str, int, int], Any]
StepProgress = Callable[[int, int], Any]


class GenerativeModel(Protocol):
    """What the loop needs: ``generate(...) -> wav [B, C, T]`` at ``codec.sample_rate`` (e.g. ``StyleMusicGen``)."""

    codec: Any
    lm: Any
    style_conditioner: Any
    text_conditioner: Any

    def generate(self, **kwargs: Any) -> Tensor: ...


def pair_texts(labels: Sequence[str] | None, n: int, pairing: str) -> list[int]:
    """Index of the reference whose text goes with excerpt ``i``: ``i`` (``same``), or the next one,
    preferring the next one with a different label (``shifted``)."""
    if pairing == "same" or n == 1:
        return list(range(n))
    if pairing != "shifted":
        raise ValueError(f"text_pairing must be 'same' or 'shifted', got {pairing!r}")
    out = []
    for i in range(n):
        j = (i + 1) % n
        if labels is not None:
            j = next(((i + d) % n for d in range(1, n) if labels[(i + d) % n] != labels[i]), j)
        out.append(j)
    return out


def _check_model(model: GenerativeModel, settings: Sequence[Setting]) -> list[Setting]:
    """Validate the settings against the model and fill in its default ``eval_q``."""
    sc, tc = getattr(model, "style_conditioner", None), getattr(model, "text_conditioner", None)
    out = []
    for s in settings:
        if s.uses_style and sc is None:
            raise ValueError(f"conditions: {s.condition!r} needs a model with a style conditioner")
        if s.uses_text and tc is None:
            raise ValueError(f"conditions: {s.condition!r} needs a model with a text conditioner")
        if s.uses_style:
            limit = getattr(sc, "num_codebooks", getattr(getattr(sc, "rvq", None), "num_codebooks", None))
            if s.eval_q is not None and isinstance(limit, int) and not 1 <= s.eval_q <= limit:
                raise ValueError(f"eval_q must be in 1..{limit} (the style codebooks), got {s.eval_q}")
            default_q = getattr(sc, "eval_q", None)
            if s.eval_q is None and isinstance(default_q, int):
                s = Setting(condition=s.condition, eval_q=default_q, beta=s.beta)
        out.append(s)
    return out


def _pieces(wav: Tensor, seconds: float, sample_rate: int) -> list[Tensor]:
    """Non-overlapping ``seconds`` pieces of ``wav [C, T]`` (at least one, zero-padded)."""
    length = max(1, round(seconds * sample_rate))
    n = max(1, wav.shape[-1] // length)
    return [crop_or_pad(wav, length, offset=j * length)[0] for j in range(n)]


def _fit_classifier(
    refs: ReferenceSet, seconds: float, notes: list[str]
) -> NearestCentroidStyleClassifier | None:
    if refs.labels is None:
        notes.append("no style label in the reference metadata: label accuracies not computed")
        return None
    if len(set(refs.labels)) < 2:
        notes.append("the references have a single style label: label accuracies not computed")
        return None
    wavs, labels = [], []
    for i, wav in enumerate(refs.tracks):
        pieces = _pieces(wav, seconds, refs.sample_rate)
        wavs += pieces
        labels += [refs.labels[i]] * len(pieces)
    classifier = NearestCentroidStyleClassifier(sample_rate=refs.sample_rate).fit(wavs, labels)
    middle = [refs.excerpt(i, seconds) for i in range(len(refs))]
    acc = classifier.score(middle, refs.labels)
    notes.append(
        f"style labels by a nearest-centroid log-mel classifier fitted on the references "
        f"({len(set(refs.labels))} classes); its accuracy on the references themselves is {acc:.3f}"
    )
    return classifier


def _generate(
    model: GenerativeModel, refs: ReferenceSet, setting: Setting, text_index: list[int], *, batch_size: int,
    excerpt_seconds: float, duration: float, sampling: SamplingSettings, seed: int, progress: Callable[[], None],
    step_progress: StepProgress | None,
) -> list[Tensor]:  # fmt: skip
    out_sr = int(model.codec.sample_rate)
    gens: list[Tensor] = []
    for b, start in enumerate(range(0, len(refs), batch_size)):
        idx = list(range(start, min(len(refs), start + batch_size)))
        style = refs.excerpts(idx, excerpt_seconds) if setting.uses_style else None
        texts: list[str | None] | None = (
            [refs.texts[text_index[i]] for i in idx] if setting.uses_text else None
        )
        # An absent condition is left out (not passed as a null row): generate() then applies plain CFG
        # on the one given, whereas a null row would make double CFG scale the guidance by alpha * beta.
        try:
            wav = model.generate(
                texts=texts, style_audio=style, style_sample_rate=refs.sample_rate if style is not None else None,
                eval_q=setting.eval_q, excerpt_length=excerpt_seconds if style is not None else None,
                seed=seed + b, progress=step_progress, duration=duration,
                sampling=sampling.replace(cfg_coef_beta=setting.beta),
            )  # fmt: skip
        except ValueError as err:
            raise ValueError(f"setting {setting.label}: {err}") from err
        wav = wav.detach().float().cpu()
        if not bool(torch.isfinite(wav).all()):
            raise ValueError(f"setting {setting.label}: the model generated NaN or inf samples")
        if out_sr != refs.sample_rate:
            wav = resample(wav, out_sr, refs.sample_rate)
        gens += list(wav)
        progress()
    return gens


def evaluate(
    model: GenerativeModel,
    references: ReferenceSet,
    settings: Sequence[Setting],
    embedder: AudioEmbedder,
    *,
    duration: float = 10.0,
    excerpt_seconds: float = 3.0,
    sampling: SamplingSettings | None = None,
    seed: int = 0,
    batch_size: int = 8,
    knn_k: int = 5,
    chunk_seconds: float = 1.0,
    text_pairing: Literal["same", "shifted"] = "shifted",
    clap: CLAPScore | None = None,
    kl_classifier: AudioClassifier | None = None,
    label_classifier: bool = True,
    audio_dir: str | Path | None = None,
    progress: Progress | None = None,
    step_progress: StepProgress | None = None,
) -> EvaluationReport:
    """Generate ``len(references)`` clips of ``duration`` s under every setting and measure them.

    Args:
        model: a model with ``generate`` (see :class:`GenerativeModel`).
        references: reference tracks (conditioning excerpts, texts, KNN database, FAD reference set).
        settings: generation settings (see :func:`~stylecond.evaluation.settings.make_settings`).
        embedder: embedding model of FAD and the KNN metrics.
        duration: seconds generated per clip; excerpt_seconds: style excerpt length.
        sampling: guidance and sampling (each setting's beta replaces ``cfg_coef_beta``); seed: batch ``b``
            uses ``seed + b``.
        batch_size: references generated together.
        knn_k: nearest tracks compared (capped at the number of reference tracks).
        chunk_seconds: FAD and KNN embed chunks of this length.
        text_pairing: texts for ``text+style``: each excerpt's own (``same``) or another reference's (``shifted``).
        clap: CLAP text-audio score model (None: not computed).
        kl_classifier: classifier for the KL metric (None: not computed).
        label_classifier: fit a nearest-centroid classifier on labelled references for label accuracies.
        audio_dir: if given, generations are written to ``audio_dir/<setting>/<index>.wav``.
        progress: ``progress(description, batches_done, batches_total)`` after each generated batch.
        step_progress: forwarded to ``model.generate`` (decoding steps of the current batch).
    """
    for name, value in (
        ("duration", duration),
        ("excerpt_seconds", excerpt_seconds),
        ("chunk_seconds", chunk_seconds),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be > 0 seconds, got {value}")
    for name, ivalue in (("batch_size", batch_size), ("knn_k", knn_k)):
        if ivalue < 1:
            raise ValueError(f"{name} must be >= 1, got {ivalue}")
    if not settings:
        raise ValueError("settings must hold at least one setting")
    settings = _check_model(model, settings)
    refs, sr, emb_name = references, references.sample_rate, embedder.name
    notes: list[str] = []
    label_clf = _fit_classifier(refs, duration, notes) if label_classifier else None
    text_index = pair_texts(refs.labels, len(refs), text_pairing)
    db = [embedder.embed_chunks(t[None], chunk_seconds, sample_rate=sr)[0] for t in refs.tracks]  # [n_i, D]
    db_ids = [tid for tid, e in zip(refs.track_ids, db) for _ in range(e.shape[0])]
    db_emb = torch.cat(db)
    k = min(knn_k, len(refs))
    if k < knn_k:
        notes.append(f"knn_k lowered from {knn_k} to {k}, the number of reference tracks")
    if k == len(refs):
        notes.append(f"k={k} equals the number of reference tracks: KNN_common is 1 by construction")
    n_batches = -(-len(refs) // batch_size)
    total, done = n_batches * len(settings), 0
    sampling = sampling or SamplingSettings()
    results: list[SettingResult] = []
    for setting in settings:

        def tick(_label: str = setting.label) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(_label, done, total)

        if progress is not None:
            progress(setting.label, done, total)
        gens = _generate(model, refs, setting, text_index, batch_size=batch_size, excerpt_seconds=excerpt_seconds,
                         duration=duration, sampling=sampling, seed=seed, progress=tick, step_progress=step_progress)  # fmt: skip
        result = SettingResult(setting=setting, num_generated=len(gens))
        length = min(g.shape[-1] for g in gens)
        gen = torch.stack([g[..., :length] for g in gens])  # [N, C, T]
        metrics = result.metrics
        fad = FrechetAudioDistance(embedder=embedder, chunk_seconds=chunk_seconds)
        fad.update(db_emb, real=True)
        fad.update(gen, real=False, sample_rate=sr)
        if float(fad.fake_n) >= 2 and float(fad.real_n) >= 2:
            metrics["fad"] = MetricValue(float(fad.compute()), emb_name)
        knn = KNNStyleMetrics(database_embeddings=db_emb, database_track_ids=db_ids, embedder=embedder, k=k,
                              chunk_seconds=chunk_seconds)  # fmt: skip
        style_idx = list(range(len(refs)))
        knn.update(
            refs.excerpts(style_idx, excerpt_seconds), gen, cond_track_ids=refs.track_ids, sample_rate=sr
        )
        metrics.update({name: MetricValue(float(v), emb_name) for name, v in knn.compute().items()})
        target = text_index if setting.uses_text else style_idx
        if clap is not None:
            clap.reset()
            clap.update(gen, [refs.texts[i] for i in target], sample_rate=sr)
            metrics["clap_score"] = MetricValue(float(clap.compute()), clap.embedding_name)
        if label_clf is not None and refs.labels is not None:
            predicted = label_clf.predict(gen)
            clf_name = f"centroid:logmel{label_clf.n_mels}"
            for kind, used, idx in (
                ("text", setting.uses_text, target),
                ("style", setting.uses_style, style_idx),
            ):
                if used:
                    acc = sum(p == refs.labels[i] for p, i in zip(predicted, idx)) / len(predicted)
                    metrics[f"{kind}_label_accuracy"] = MetricValue(acc, clf_name)
        if kl_classifier is not None:
            kl = KLDivergence(classifier=kl_classifier)
            kl.update(gen, torch.stack([refs.excerpt(i, length / sr) for i in target]), sample_rate=sr)
            metrics.update(
                {name: MetricValue(float(v), kl_classifier.name) for name, v in kl.compute().items()}
            )
        if audio_dir is not None:
            for i, g in enumerate(gens):
                save_audio(Path(audio_dir) / setting.slug / f"{i:04d}.wav", g.clamp(-1, 1), sr)
        results.append(result)
    config = {
        "num_samples": len(refs), "duration": duration, "excerpt_seconds": excerpt_seconds,
        "cfg_coef": sampling.cfg_coef, "top_k": sampling.top_k, "top_p": sampling.top_p,
        "temperature": sampling.temperature, "seed": seed, "knn_k": k, "chunk_seconds": chunk_seconds,
        "text_pairing": text_pairing,
    }  # fmt: skip
    return EvaluationReport(
        embedder=emb_name, results=results, references=refs.summary(), config=config, notes=notes
    )
