"""Where a pretrained model comes from: a stylecond export, an audiocraft release or a transformers MusicGen,
as a local directory or a hub id (downloaded through huggingface_hub, honouring ``revision``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stylecond.interop.audiocraft import CODEC_FILE, LM_FILE, read_audiocraft
from stylecond.interop.transformers_musicgen import read_transformers_musicgen
from stylecond.models.pretrained import CONFIG_NAME, WEIGHTS_NAME
from stylecond.utils.hf_component import resolve_file

Kind = Literal["stylecond", "audiocraft", "transformers"]
Format = Literal["auto", "stylecond", "audiocraft", "transformers"]
#: what each kind needs, in the order "auto" tries them
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "stylecond": (CONFIG_NAME, WEIGHTS_NAME),
    "transformers": ("config.json",),
    "audiocraft": (LM_FILE, CODEC_FILE),
}
#: what an audiocraft release's frozen parts can be replaced by (hub name or local path, and revisions)
PARTS = ("t5", "mert", "encodec", "t5_revision", "mert_revision", "encodec_revision")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Source:
    """A resolved model source: its ``kind``, the local ``directory`` holding its files (a hub snapshot for
    hub ids), what the user named (``name``), the hub ``revision`` and whether it came from the hub."""

    kind: Kind
    directory: Path
    name: str
    revision: str | None
    from_hub: bool


def _is_musicgen_config(path: Path) -> bool:
    import json

    try:
        return json.loads(path.read_text()).get("model_type") == "musicgen"
    except (OSError, ValueError):
        return False


def _describe() -> str:
    return "; ".join(f"{kind}: {' + '.join(files)}" for kind, files in REQUIRED.items())


def resolve_source(
    source: str | Path,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    format: Format = "auto",
) -> Source:
    """Find what ``source`` is. A local directory is inspected; anything else must be a hub id, whose
    files are fetched with ``huggingface_hub`` (from the cache when offline)."""
    name = str(source)
    kinds: list[Kind] = list(REQUIRED) if format == "auto" else [format]
    local = Path(name).expanduser()
    if local.is_dir():
        for kind in kinds:
            files = REQUIRED[kind]
            if all((local / f).is_file() for f in files):
                if kind == "transformers" and not _is_musicgen_config(local / "config.json"):
                    continue
                return Source(kind, local, name, revision, from_hub=False)
        partial = [f for kind in kinds for f in REQUIRED[kind] if (local / f).is_file()]
        hint = f" (found {partial}, but not the files that go with them)" if partial else ""
        raise FileNotFoundError(f"{local} is not a model directory{hint}: expected {_describe()}")
    if local.exists() or name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise FileNotFoundError(f"{name} does not exist (neither a model directory nor a hub id)")
    for kind in kinds:
        paths = []
        for f in REQUIRED[kind]:
            path = resolve_file(name, f, revision=revision, local_files_only=local_files_only)
            if path is None:
                break
            paths.append(path)
        else:
            if kind == "transformers" and not _is_musicgen_config(paths[0]):
                continue
            return Source(kind, paths[0].parent, name, revision, from_hub=True)
    raise FileNotFoundError(
        f"hub repository {name!r}{f' at revision {revision!r}' if revision else ''} has none of the "
        f"layouts stylecond reads ({_describe()}), or it is not in the local cache while offline"
    )


def read_source(
    src: Source, *, local_files_only: bool = False, **parts: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(stylecond config, state dict)`` of an audiocraft or transformers source (tensors memory-mapped
    where the files allow). ``parts`` (audiocraft only) replace its T5 / MERT / EnCodec sources."""
    if src.kind == "audiocraft":
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown part(s) {unknown}; an audiocraft release takes {list(PARTS)}")
        return read_audiocraft(src.directory, local_files_only=local_files_only, **parts)
    if parts:
        raise ValueError(
            f"{sorted(parts)} apply to audiocraft releases only; {src.name} is a {src.kind} model"
        )
    if src.kind == "transformers":
        where = src.name if src.from_hub else str(src.directory)
        return read_transformers_musicgen(where, revision=src.revision, local_files_only=local_files_only)
    raise ValueError(f"{src.name} is a stylecond export: load it with from_pretrained")
