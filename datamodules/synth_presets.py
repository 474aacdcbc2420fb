"""Style presets of :class:`datamodules.synth.SynthStyles`: modes, drum kits, timbres and per-style music.

Add a style by adding a :class:`StyleSpec` to ``STYLE_SPECS``; its key becomes the style name.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
}
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 0, 3, 4), (0, 2, 3, 4))
#: drum kit -> {piece: 16th-note steps in a 4/4 bar}
DRUM_KITS: dict[str, dict[str, tuple[int, ...]]] = {
    "chip": {"kick": (0, 8), "snare": (4, 12), "hat": (2, 6, 10, 14)},
    "four_on_floor": {"kick": (0, 4, 8, 12), "hat": (2, 6, 10, 14), "clap": (4, 12)},
    "backbeat": {"kick": (0, 8, 10), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},
    "funk": {"kick": (0, 3, 8, 10), "snare": (4, 12), "hat": tuple(range(16))},
    "ride": {"ride": (0, 4, 6, 8, 12, 14), "hat": (4, 12)},
    "hand": {"low": (0, 6, 8), "high": (4, 12, 14)},
}


@dataclass(frozen=True)
class Timbre:
    """One instrument: additive harmonic table (or 2-op FM) with an ADSR(+exp decay) envelope."""

    harmonics: tuple[float, ...] = (1.0,)  # amplitude of partial 1..H
    bright: tuple[float, ...] = ()  # extra partials that decay with time constant ``bright_tau``
    bright_tau: float = 0.1
    attack: float = 0.005
    decay: float = 0.1
    sustain: float = 0.8
    release: float = 0.05
    tau: float = 0.0  # > 0: extra exponential decay (plucked / struck)
    vibrato: float = 0.0  # relative depth
    drive: float = 0.0  # tanh distortion gain (0 = clean)
    breath: float = 0.0  # relative noise level
    fm_ratio: float = 0.0  # > 0: FM synthesis instead of the harmonic table
    fm_index: float = 0.0


def _saw(n: int, p: float = 1.0) -> tuple[float, ...]:
    return tuple(1.0 / k**p for k in range(1, n + 1))


def _odd(n: int, p: float = 1.0) -> tuple[float, ...]:
    return tuple((1.0 / k**p if k % 2 else 0.0) for k in range(1, n + 1))


@dataclass(frozen=True)
class StyleSpec:
    """Musical parameters of one style. Registers are MIDI note ranges; ``grid`` is steps per beat."""

    label: str
    adjective: str
    instrument: str
    lead: Timbre
    bpm: tuple[int, int]
    modes: tuple[str, ...]
    register: tuple[int, int]
    grid: int
    density: float
    legato: float = 0.9
    leap: float = 1.0  # scale of the melodic random walk step
    swing: float = 0.0
    drums: str | None = None
    bass: Timbre | None = None
    bass_per_beat: bool = False
    pad: Timbre | None = None
    power_chords: bool = False
    gains: tuple[float, float, float, float] = (1.0, 0.5, 0.3, 0.6)  # lead, bass, pad, drums


STYLE_SPECS: dict[str, StyleSpec] = {
    "chiptune": StyleSpec(
        "chiptune", "bright", "a square-wave lead",
        Timbre(_odd(15), attack=0.002, decay=0.05, sustain=0.7, release=0.02),
        (140, 180), ("major", "mixolydian"), (72, 88), 4, 0.8, legato=0.7, drums="chip",
        bass=Timbre(_odd(9, 2.0), attack=0.002, sustain=0.9, release=0.02), bass_per_beat=True,
    ),
    "ambient": StyleSpec(
        "ambient", "soft", "an airy synth pad",
        Timbre((1.0, 0.15, 0.05), attack=0.6, decay=0.5, sustain=0.8, release=1.2, vibrato=0.004),
        (60, 80), ("lydian", "major"), (60, 76), 1, 0.45, legato=1.0, leap=0.8,
        pad=Timbre((1.0, 0.3, 0.1, 0.05), attack=1.0, decay=0.5, sustain=0.9, release=1.5),
        gains=(0.9, 0.0, 0.45, 0.0),
    ),
    "piano_ballad": StyleSpec(
        "piano ballad", "warm", "a piano",
        Timbre(_saw(8, 2.0), bright=_saw(12, 1.2), bright_tau=0.08, attack=0.003, decay=0.2, sustain=1.0,
               release=0.15, tau=0.9),
        (66, 90), ("major",), (60, 79), 2, 0.6,
        bass=Timbre(_saw(6, 2.0), bright=_saw(8, 1.5), attack=0.003, release=0.2, tau=1.2),
    ),
    "techno": StyleSpec(
        "techno", "driving", "a saw bass synth",
        Timbre(_saw(30), bright=_saw(30, 0.7), bright_tau=0.04, attack=0.002, decay=0.08, sustain=0.5,
               release=0.03),
        (124, 136), ("minor", "phrygian"), (36, 50), 4, 0.7, legato=0.5, leap=0.6, drums="four_on_floor",
        pad=Timbre(_saw(6, 2.0), attack=0.3, decay=0.5, sustain=0.8, release=0.5), gains=(0.8, 0.0, 0.3, 0.9),
    ),
    "jazz": StyleSpec(
        "jazz", "mellow", "an electric piano",
        Timbre((1.0, 0.25, 0.08, 0.03), bright=(0.0, 0.0, 0.0, 0.2, 0.1, 0.05, 0.3), bright_tau=0.05,
               attack=0.004, release=0.1, tau=0.6, vibrato=0.002),
        (100, 140), ("dorian",), (58, 77), 2, 0.65, leap=1.3, swing=0.17, drums="ride",
        bass=Timbre((1.0, 0.4, 0.1), attack=0.01, release=0.08, tau=0.5), bass_per_beat=True,
        gains=(1.0, 0.6, 0.0, 0.35),
    ),
    "rock": StyleSpec(
        "rock", "distorted", "an electric guitar",
        Timbre(_saw(20, 1.3), attack=0.003, decay=0.2, sustain=0.7, release=0.05, drive=6.0),
        (100, 140), ("minor", "minor pentatonic"), (40, 60), 2, 0.9, legato=0.9, leap=0.7,
        drums="backbeat", power_chords=True, gains=(0.9, 0.0, 0.0, 0.8),
    ),
    "strings": StyleSpec(
        "orchestral strings", "lush", "a string ensemble",
        Timbre(_saw(16, 1.2), attack=0.25, decay=0.3, sustain=0.9, release=0.4, vibrato=0.006),
        (60, 84), ("harmonic minor", "minor"), (55, 79), 1, 0.85, legato=1.0,
        pad=Timbre(_saw(12, 1.4), attack=0.5, decay=0.3, sustain=0.9, release=0.8, vibrato=0.004),
        bass=Timbre(_saw(10, 1.3), attack=0.2, sustain=0.9, release=0.4), gains=(1.0, 0.5, 0.35, 0.0),
    ),
    "music_box": StyleSpec(
        "music box", "sparkling", "a music box",
        Timbre(attack=0.001, release=0.3, tau=0.5, fm_ratio=3.5, fm_index=1.5),
        (90, 110), ("major pentatonic", "major"), (79, 96), 2, 0.55, legato=1.0, leap=1.5,
        gains=(1.0, 0.0, 0.0, 0.0),
    ),
    "funk": StyleSpec(
        "funk", "punchy", "a slap bass",
        Timbre(_saw(12, 1.5), bright=_saw(24, 0.8), bright_tau=0.03, attack=0.002, release=0.03, tau=0.25),
        (96, 116), ("dorian", "mixolydian"), (33, 52), 4, 0.55, legato=0.6, leap=1.4, drums="funk",
        pad=Timbre(_odd(12, 0.8), bright=_saw(20), bright_tau=0.02, attack=0.002, release=0.05, tau=0.12),
        gains=(1.0, 0.0, 0.5, 0.7),
    ),
    "folk": StyleSpec(
        "folk", "breathy", "a wooden flute",
        Timbre((1.0, 0.3, 0.1), attack=0.06, decay=0.1, sustain=0.85, release=0.08, vibrato=0.008,
               breath=0.15),
        (100, 130), ("mixolydian", "major"), (72, 88), 2, 0.75, drums="hand",
        bass=Timbre(_saw(10, 1.5), bright=_saw(16), attack=0.003, release=0.3, tau=0.8),
        gains=(1.0, 0.35, 0.0, 0.45),
    ),
}  # fmt: skip
STYLES: tuple[str, ...] = tuple(STYLE_SPECS)
