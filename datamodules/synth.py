"""Procedural multi-style music (numpy only) with captions: data for tests, the demo and benchmarks.

Each style has its own timbre (harmonics, attack brightness, envelope, FM, distortion, breath noise),
tempo range, modes, register, rhythm grid and density, bass/pad parts and drum kit. Every clip draws
its key, tempo, chord progression and melody from a seeded RNG, so the same seed gives identical audio.

Example::

    synth = SynthStyles(sample_rate=16000, seed=0)
    clip = synth.clip("techno", seconds=5.0, seed=3)  # clip.audio [1, 80000], clip.caption
    for clip in synth.clips(16, seconds=2.0): ...  # round-robin over STYLES
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from datamodules.synth_presets import (
    DRUM_KITS,
    KEYS,
    MODES,
    PROGRESSIONS,
    STYLE_SPECS,
    STYLES,
    StyleSpec,
    Timbre,
)

__all__ = ["MODES", "STYLE_SPECS", "STYLES", "StyleSpec", "SynthClip", "SynthStyles", "Timbre"]


@dataclass
class SynthClip:
    """One synthetic clip: ``audio [1, T]`` float32 in [-1, 1], its caption and attributes (JSON-safe)."""

    audio: Tensor
    sample_rate: int
    style: str
    caption: str
    attributes: dict[str, Any] = field(default_factory=dict)


TABLE_SIZE = 4096


@lru_cache(maxsize=512)
def _table(harmonics: tuple[float, ...], n_harm: int) -> np.ndarray:
    """One period ``[TABLE_SIZE]`` of ``sum_k harmonics[k-1] * sin(2 pi k x)`` over the first ``n_harm`` partials."""
    amps = np.asarray(harmonics[:n_harm], dtype=np.float64)
    spec = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spec[1 : len(amps) + 1] = -0.5j * TABLE_SIZE * amps
    return np.fft.irfft(spec, n=TABLE_SIZE)


def _table_index(phase: np.ndarray) -> np.ndarray:
    """Nearest wavetable index of ``phase`` (cycles)."""
    return (phase * TABLE_SIZE).astype(np.int64) & (TABLE_SIZE - 1)


def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


class _Renderer:
    """Renders notes and drum hits of one clip into a float64 buffer."""

    def __init__(self, sample_rate: int, rng: np.random.Generator, length: int) -> None:
        self.sr = sample_rate
        self.rng = rng
        self.length = length
        self._noise: np.ndarray | None = None

    @property
    def noise(self) -> np.ndarray:
        """White noise covering the clip plus release tails (drawn on first use)."""
        if self._noise is None:
            self._noise = self.rng.standard_normal(self.length + 4 * self.sr)
        return self._noise

    def note(self, out: np.ndarray, timbre: Timbre, start: int, gate: float, midi: float, vel: float) -> None:
        """Add one note (``gate`` seconds held, then released) starting at sample ``start`` to ``out``."""
        sr = self.sr
        n = min(int((gate + timbre.release) * sr), len(out) - start)
        if n <= 0:
            return
        t = np.arange(n) / sr
        f = _midi_hz(midi)
        phase = f * t
        if timbre.vibrato:
            rate = 5.5
            phase = phase + f * timbre.vibrato * (1 - np.cos(2 * np.pi * rate * t)) / (2 * np.pi * rate)
        if timbre.fm_ratio:
            index = timbre.fm_index * np.exp(-t / 0.25)
            wave = np.sin(2 * np.pi * phase + index * np.sin(2 * np.pi * timbre.fm_ratio * phase))
        else:
            n_harm = max(1, int(0.45 * sr / f))
            index = _table_index(phase)
            wave = _table(timbre.harmonics, n_harm)[index]
            if timbre.bright:
                wave += _table(timbre.bright, n_harm)[index] * np.exp(-t / timbre.bright_tau)
        a, d, s = timbre.attack, timbre.decay, timbre.sustain
        xp, fp = [0.0, a, a + d], [0.0, 1.0, s]
        keep = [i for i in range(3) if xp[i] < gate] or [0]
        held = float(np.interp(gate, xp, fp))
        env = np.interp(
            t, [xp[i] for i in keep] + [gate, gate + timbre.release], [fp[i] for i in keep] + [held, 0.0]
        )
        if timbre.tau:
            env = env * np.exp(-t / timbre.tau)
        if timbre.breath:
            noise = self.noise[start : start + n]
            wave = wave + timbre.breath * (noise - np.convolve(noise, np.ones(3) / 3, mode="same"))
        out[start : start + n] += vel * env * wave

    def drum(self, piece: str) -> np.ndarray:
        """One-shot sample of a drum piece (deterministic given the renderer's RNG state)."""
        sr = self.sr
        t = np.arange(int(0.35 * sr)) / sr
        noise = self.rng.standard_normal(len(t))
        hp = noise - np.convolve(noise, np.ones(4) / 4, mode="same")
        if piece == "kick":
            freq = 48 + 110 * np.exp(-t / 0.03)
            return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12)
        if piece == "snare":
            return 0.7 * noise * np.exp(-t / 0.06) + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)
        if piece == "clap":
            return 0.8 * hp * np.exp(-t / 0.04) * (1 + np.sign(np.sin(2 * np.pi * 90 * t))) / 2
        if piece == "hat":
            return 0.5 * hp * np.exp(-t / 0.015)
        if piece == "ride":
            bell = sum(np.sin(2 * np.pi * fr * t) for fr in (3150.0, 4130.0, 5270.0)) / 3
            return (0.3 * hp + 0.2 * bell) * np.exp(-t / 0.25)
        if piece == "low":
            freq = 90 + 60 * np.exp(-t / 0.02)
            return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.2) + 0.1 * noise * np.exp(
                -t / 0.02
            )
        if piece == "high":
            freq = 240 + 80 * np.exp(-t / 0.01)
            return 0.6 * np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.08)
        raise ValueError(f"unknown drum piece {piece!r}")


class _Piece:
    """The musical choices of one clip (tempo, mode, key, chords) and the parts rendered from them."""

    def __init__(self, spec: StyleSpec, rng: np.random.Generator, sample_rate: int, length: int) -> None:
        self.spec, self.rng, self.sr, self.length = spec, rng, sample_rate, length
        self.bpm = int(rng.integers(spec.bpm[0], spec.bpm[1] + 1))
        self.mode = spec.modes[int(rng.integers(len(spec.modes)))]
        self.tonic = int(rng.integers(12))
        self.scale = MODES[self.mode]
        self.progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
        self.beat = 60.0 / self.bpm
        self.n_bars = int(np.ceil(length / sample_rate / (4 * self.beat))) + 1
        lo, hi = spec.register
        self.base = 12 * ((lo + hi) // 2 // 12) + self.tonic - 12  # a tonic in or below the register
        self.render = _Renderer(sample_rate, rng, length)

    def pitch(self, degree: int, octave_base: int | None = None) -> int:
        """MIDI pitch of a scale degree (0 = tonic at ``octave_base``, default the lead's base)."""
        base = self.base if octave_base is None else octave_base
        return base + 12 * (degree // len(self.scale)) + self.scale[degree % len(self.scale)]

    def onset(self, step: int, per_beat: int) -> int:
        """Sample index of grid ``step`` (``per_beat`` steps per beat), with the style's swing."""
        pos = step / per_beat
        if self.spec.swing and step % 2 == 1 and per_beat in (2, 4):
            pos += self.spec.swing * 2 / per_beat
        return int(pos * self.beat * self.sr)

    def melody(self) -> np.ndarray:
        """A 2-bar motif (random walk on scale degrees), repeated over the chords with mutations."""
        spec, rng, render = self.spec, self.rng, self.render
        steps = 8 * spec.grid
        motif_on = rng.random(steps) < spec.density
        motif_on[0] = True
        sizes = np.maximum(1, np.round(np.abs(rng.normal(0.0, spec.leap, steps)))) * rng.choice(
            [-1, 1], steps
        )
        walk = np.cumsum(np.where(rng.random(steps) < 0.15, 0, sizes).astype(int))  # mostly moving
        degrees = [d for d in range(-14, 40) if spec.register[0] <= self.pitch(d) <= spec.register[1]]
        low, span = degrees[0], max(1, 2 * (degrees[-1] - degrees[0]))
        centre = degrees[len(degrees) // 2]
        onsets = np.flatnonzero(motif_on)
        lead = np.zeros(self.length)
        for rep in range(0, self.n_bars, 2):
            for j, step in enumerate(onsets):
                start = self.onset(rep * 4 * spec.grid + int(step), spec.grid)
                if start >= self.length:
                    break
                deg = centre + self.progression[rep % 4] + int(walk[j])
                deg += int(rng.integers(-2, 3)) if rng.random() < 0.2 else 0
                deg = low + min((deg - low) % span, -(deg - low) % span)  # fold back into the register
                nxt = onsets[j + 1] if j + 1 < len(onsets) else steps
                gate = max(1, int(nxt - step)) * self.beat / spec.grid * spec.legato
                vel = 0.75 + 0.25 * rng.random()
                render.note(lead, spec.lead, start, gate, self.pitch(deg), vel)
                if spec.power_chords:
                    render.note(lead, spec.lead, start, gate, self.pitch(deg) + 7, vel * 0.8)
        if spec.lead.drive:
            lead = np.tanh(spec.lead.drive * lead) / np.tanh(spec.lead.drive)
        return lead

    def accompaniment(self) -> tuple[np.ndarray, np.ndarray]:
        """Bass (root per bar, or a walking line per beat) and pad (triad per bar) parts."""
        spec, beat = self.spec, self.beat
        bass, pad = np.zeros(self.length), np.zeros(self.length)
        for bar in range(self.n_bars):
            root = self.progression[bar % 4]
            bar_start = self.onset(bar * 4, 1)
            if bar_start >= self.length:
                break
            if spec.bass is not None:
                for b in range(4 if spec.bass_per_beat else 1):
                    deg = root + (int(self.rng.choice([0, 2, 4, 7])) if spec.bass_per_beat and b else 0)
                    gate = beat * (0.9 if spec.bass_per_beat else 3.8)
                    midi = self.pitch(deg, 36 + self.tonic)
                    self.render.note(bass, spec.bass, self.onset(bar * 4 + b, 1), gate, midi, 0.9)
            if spec.pad is not None:
                for k in (0, 2, 4):
                    midi = self.pitch(root + k, 48 + self.tonic)
                    self.render.note(pad, spec.pad, bar_start, 4 * beat, midi, 0.5)
        return bass, pad

    def drums(self) -> np.ndarray:
        """The style's drum kit pattern (16th-note grid), accents on the beat."""
        out = np.zeros(self.length)
        if self.spec.drums is None:
            return out
        for piece, pattern in DRUM_KITS[self.spec.drums].items():
            shot = self.render.drum(piece)
            for bar in range(self.n_bars):
                for step in pattern:
                    start = self.onset(bar * 16 + step, 4)
                    if start < self.length:
                        n = min(len(shot), self.length - start)
                        out[start : start + n] += shot[:n] * (0.7 + 0.3 * (step % 4 == 0))
        return out


class SynthStyles:
    """Deterministic procedural music in named styles (see ``STYLES``), far faster than real time.

    Args:
        sample_rate: Output sample rate in Hz (8000..192000). Audio is mono ``[1, T]``.
        seed: Base seed, mixed with the style name and the per-clip seed.
    """

    def __init__(self, *, sample_rate: int = 16000, seed: int = 0) -> None:
        if not 8000 <= int(sample_rate) <= 192000:
            raise ValueError(f"sample_rate must be in 8000..192000 Hz, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)

    @property
    def styles(self) -> tuple[str, ...]:
        return STYLES

    def clip(self, style: str, *, seconds: float, seed: int = 0) -> SynthClip:
        """Synthesize ``seconds`` (> 0) of ``style``; the same (style, seconds, seed) gives identical audio."""
        if style not in STYLE_SPECS:
            raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
        if not seconds > 0 or not np.isfinite(seconds):
            raise ValueError(f"seconds must be a positive finite number, got {seconds}")
        spec = STYLE_SPECS[style]
        rng = np.random.default_rng([self.seed % 2**63, zlib.crc32(style.encode()), int(seed) % 2**63])
        sr, length = self.sample_rate, max(1, round(seconds * self.sample_rate))
        piece = _Piece(spec, rng, sr, length)
        lead = piece.melody()
        bass, pad = piece.accompaniment()
        g = spec.gains
        mix = g[0] * lead + g[1] * bass + g[2] * pad + g[3] * piece.drums()
        fade = min(length // 2, int(0.005 * sr))
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            mix[:fade] *= ramp
            mix[length - fade :] *= ramp[::-1]
        peak = float(np.max(np.abs(mix)))
        if peak > 0:
            mix *= 0.89 / peak
        audio = torch.from_numpy(np.nan_to_num(mix).astype(np.float32)).unsqueeze(0)
        bpm, mode, key, (lo, hi) = piece.bpm, piece.mode, KEYS[piece.tonic], spec.register
        tempo = "slow" if bpm < 80 else "mid-tempo" if bpm < 110 else "upbeat" if bpm < 135 else "fast"
        register = "low" if hi <= 60 else "high" if lo >= 72 else "middle"
        has_drums = spec.drums is not None
        article = "an" if tempo[0] in "aeiou" else "a"
        caption = (
            f"{article} {tempo} {spec.adjective} {spec.label} piece played on {spec.instrument} in a {register} "
            f"register, in {key} {mode} at {bpm} bpm, {'with' if has_drums else 'without'} drums"
        )
        attributes: dict[str, Any] = {
            "style": style, "bpm": bpm, "tempo": tempo, "key": key, "mode": mode, "instrument": spec.instrument,
            "timbre": spec.adjective, "register": register, "drums": has_drums, "density": spec.density,
            "seed": int(seed), "seconds": length / sr,
        }  # fmt: skip
        return SynthClip(audio=audio, sample_rate=sr, style=style, caption=caption, attributes=attributes)

    def clips(
        self, n: int, *, seconds: float, seed: int = 0, styles: Sequence[str] | None = None
    ) -> Iterator[SynthClip]:
        """Yield ``n`` clips round-robin over ``styles`` (default all); clip ``i`` uses seed ``seed * 1_000_003 + i``."""
        chosen = tuple(styles) if styles is not None else STYLES
        if not chosen:
            raise ValueError("styles must name at least one style")
        for name in chosen:
            if name not in STYLE_SPECS:
                raise ValueError(f"styles must be drawn from {', '.join(STYLES)}; got {name!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        for i in range(n):
            yield self.clip(chosen[i % len(chosen)], seconds=seconds, seed=seed * 1_000_003 + i)
