"""Lazy package exports: cheap import, names resolve on first access, unknown names fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stylecond
import stylecond.codecs


def test_import_stylecond_does_not_import_torch() -> None:
    code = "import sys, stylecond; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_names_resolve_and_are_cached() -> None:
    from stylecond.codecs.mel_codec import MelCodec

    assert stylecond.codecs.MelCodec is MelCodec
    assert "MelCodec" in vars(stylecond.codecs)
    assert "MelCodec" in dir(stylecond.codecs)
    for name in stylecond.__all__[1:]:
        assert getattr(stylecond, name) is not None, name


def test_unknown_name_names_the_package() -> None:
    with pytest.raises(AttributeError, match="'stylecond.codecs' has no attribute 'Nope'"):
        _ = stylecond.codecs.Nope
