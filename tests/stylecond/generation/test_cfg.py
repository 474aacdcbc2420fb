from __future__ import annotations

import numpy as np
import pytest
import torch

from stylecond.generation.cfg import cfg, double_cfg


def test_cfg_formula_by_hand() -> None:
    l_cond = torch.tensor([1.0, 2.0, -1.0])
    l_null = torch.tensor([0.5, 0.0, 1.0])
    # 0.5 + 3 * 0.5 = 2.0 ; 0 + 3 * 2 = 6 ; 1 + 3 * (-2) = -5
    assert torch.equal(cfg(l_cond, l_null, 3.0), torch.tensor([2.0, 6.0, -5.0]))
    assert torch.equal(cfg(l_cond, l_null, 1), l_cond)
    assert torch.equal(cfg(l_cond, l_null, 0.0), l_null)


def test_double_cfg_formula_by_hand() -> None:
    l_full = torch.tensor([2.0, 0.0])
    l_style = torch.tensor([1.0, 1.0])
    l_null = torch.tensor([0.0, -1.0])
    # [0] 0 + 3 * (1 + 5 * (2 - 1) - 0) = 18 ; [1] -1 + 3 * (1 + 5 * (0 - 1) + 1) = -10
    out = double_cfg(l_full, l_style, l_null, 3.0, 5.0)
    assert torch.equal(out, torch.tensor([18.0, -10.0]))


def test_double_cfg_beta_one_is_plain_cfg() -> None:
    g = torch.Generator().manual_seed(1)
    l_full, l_style, l_null = (torch.randn(2, 4, 7, generator=g) for _ in range(3))
    torch.testing.assert_close(double_cfg(l_full, l_style, l_null, 2.5, 1.0), cfg(l_full, l_null, 2.5))


def test_numpy_scalars_accepted() -> None:
    x = torch.ones(3)
    torch.testing.assert_close(cfg(x, x * 0, np.float32(2.0)), 2 * x)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, "3", torch.tensor(3.0), None, float("nan"), float("inf")])
def test_bad_alpha_raises_naming_it(bad: object) -> None:
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="alpha"):
        cfg(x, x, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        double_cfg(x, x, x, bad, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [False, "5", torch.tensor(5.0, requires_grad=True)])
def test_bad_beta_raises_naming_it(bad: object) -> None:
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="beta"):
        double_cfg(x, x, x, 3.0, bad)  # type: ignore[arg-type]


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="l_null"):
        cfg(torch.zeros(2, 3), torch.zeros(2, 4), 3.0)
    with pytest.raises(ValueError, match="l_style"):
        double_cfg(torch.zeros(3), torch.zeros(4), torch.zeros(3), 3.0, 5.0)
