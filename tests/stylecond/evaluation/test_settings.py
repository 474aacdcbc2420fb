from __future__ import annotations

import pytest

from stylecond.evaluation.settings import Setting, make_settings


def test_grid() -> None:
    settings = make_settings(["style", "text", "text+style"], [1, 3, 3], [1.0, 5.0])
    labels = [s.label for s in settings]
    assert labels == ["style q=1", "style q=3", "text", "text+style q=1 β=1", "text+style q=1 β=5",
                      "text+style q=3 β=1", "text+style q=3 β=5"]  # fmt: skip
    assert settings[-1].slug == "text+style_q3_b5"
    assert make_settings(["text+style"], [], []) == [Setting(condition="text+style")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"condition": "melody"},
        {"condition": "text", "eval_q": 2},
        {"condition": "style", "beta": 5.0},
        {"condition": "style", "eval_q": 0},
    ],  # fmt: skip
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Setting(**kwargs)  # type: ignore[arg-type]


def test_unknown_condition_is_named() -> None:
    with pytest.raises(ValueError, match="melody"):
        make_settings(["style", "melody"], [], [])
