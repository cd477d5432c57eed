"""FiLM: exact identity at init, the γ ⊙ f + β formula, gradients."""

from __future__ import annotations

import torch

from fieldvision.models.film import FiLM


def test_identity_at_init_exactly():
    torch.manual_seed(0)
    film = FiLM(cond_dim=4, feat_dim=16)
    f = torch.randn(8, 16)
    for cond in (torch.randn(8, 4), 100 * torch.randn(8, 4), torch.zeros(8, 4)):
        assert torch.equal(film(f, cond), f)


def _perturbed(film: FiLM) -> FiLM:
    with torch.no_grad():
        for p in film.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return film


def test_matches_formula_after_training_moves_it():
    torch.manual_seed(1)
    film = _perturbed(FiLM(cond_dim=3, feat_dim=5, hidden=7))
    f, cond = torch.randn(4, 5), torch.randn(4, 3)
    first, act, last = film.generator
    h = last(act(first(cond)))  # (B, 2D)
    gamma, beta = 1 + h[:, :5], h[:, 5:]
    out = film(f, cond)
    torch.testing.assert_close(out, gamma * f + beta)
    assert not torch.allclose(out, f)
    # The modulation depends on the condition.
    assert not torch.allclose(film(f, cond + 1), out)


def test_gradcheck_float64():
    torch.manual_seed(2)
    film = _perturbed(FiLM(cond_dim=2, feat_dim=3, hidden=4).double())
    f = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    cond = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(film, (f, cond))


def test_zero_init_still_learns():
    # Δγ, β start at zero, but the last layer receives gradient, so FiLM can move away.
    film = FiLM(cond_dim=2, feat_dim=3)
    f, cond = torch.randn(5, 3), torch.randn(5, 2)
    film(f, cond).pow(2).sum().backward()
    assert film.generator[-1].weight.grad.abs().sum() > 0
