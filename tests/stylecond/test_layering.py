"""Imports point down: no package of stylecond imports one that imports it back, components never import
the training loop or the CLI, and no module reads Lightning's private state."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: reusable blocks: importable into someone else's model, so they must not pull in the app layers
COMPONENTS = {"audio", "mel", "codecs", "conditioners", "features", "quantization", "lm", "generation", "kernels",
              "metrics", "utils", "inversion", "interop"}  # fmt: skip
APP_LAYERS = {"training", "commands", "cli", "demo", "evaluation"}


def _unit(module: str) -> str:
    """``stylecond.lm.music_lm`` -> ``lm``; ``stylecond.audio`` -> ``audio``; ``datamodules.x`` -> ``datamodules``."""
    parts = module.split(".")
    if parts[0] != "stylecond":
        return parts[0]
    return parts[1] if len(parts) > 1 else "stylecond"


def _edges() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> importing modules."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in [*ROOT.glob("stylecond/**/*.py"), *ROOT.glob("datamodules/**/*.py")]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        source = _unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] in ("stylecond", "datamodules"):
                    target = _unit(name)
                    if target not in (source, "stylecond"):
                        edges[source][target].add(module)
    return edges


def test_no_two_packages_import_each_other() -> None:
    edges = _edges()
    cycles = sorted(
        f"{a} <-> {b}: {sorted(edges[a][b])} / {sorted(edges[b][a])}"
        for a in edges
        for b in edges[a]
        if a < b and a in edges.get(b, {})
    )
    assert not cycles, cycles


def test_components_never_import_the_training_loop_or_the_cli() -> None:
    edges = _edges()
    bad = sorted(f"{src} -> {dst} ({sorted(mods)})" for src in COMPONENTS for dst, mods in edges[src].items()
                 if dst in APP_LAYERS)  # fmt: skip
    assert not bad, bad
    assert not {dst for dst in edges["utils"]} - {"utils"}  # utils depends on nothing of ours


def test_no_private_lightning_state_is_read() -> None:
    private = re.compile(r"\._trainer\b|\._results\b|_current_fx_name|\.trainer\._")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in [*ROOT.glob("stylecond/**/*.py"), *ROOT.glob("datamodules/**/*.py")]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert not hits, hits
