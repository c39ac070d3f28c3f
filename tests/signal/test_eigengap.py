"""``eigengap_loss``: values, per-sample k, reductions, derivatives (generic and with a degenerate
rest of the spectrum, where torch.linalg.eigh-based code gets NaN), subgradient at a flat floor,
bad input."""

import pytest
import torch
from torch.func import grad, vmap

from difflinalg import InputError
from difflinalg.signal import eigengap_loss
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum, randn

from _helpers import gen

F64, C64, C128 = torch.float64, torch.complex64, torch.complex128


def test_values_and_per_sample_k():
    w = torch.tensor([[0.0, 1.0, 1.5, 4.0, 9.0], [2.0, 2.1, 2.2, 2.3, 8.0]], dtype=F64)
    R = hermitian_with_spectrum(C128, gen(1), w[0]), hermitian_with_spectrum(C128, gen(2), w[1])
    R = torch.stack(R)
    # descending: sample 0 -> 9, 4, 1.5, 1, 0 ; sample 1 -> 8, 2.3, 2.2, 2.1, 2.0
    out = eigengap_loss(R, torch.tensor([1, 2]), 6.0, reduction="none")
    assert torch.allclose(out, torch.tensor([6.0 - 5.0, 6.0 - 0.1], dtype=F64), atol=1e-12)
    out = eigengap_loss(R, 1, torch.tensor([6.0, 3.0], dtype=F64), reduction="none")
    assert torch.allclose(out, torch.tensor([1.0, 0.0], dtype=F64), atol=1e-12)
    assert torch.allclose(eigengap_loss(R, 2, 6.0), out.new_tensor([(6.0 - 2.5 + 6.0 - 0.1) / 2]).squeeze(), atol=1e-12)
    assert torch.allclose(eigengap_loss(R, 2, 6.0, reduction="sum"), out.new_tensor(6.0 - 2.5 + 6.0 - 0.1), atol=1e-12)


def test_gradient_is_eigenvector_outer_products():
    """Active hinge: dL/dR = v_{k+1} v_{k+1}^H - v_k v_k^H (eigenvectors of the k-th and
    (k+1)-th largest eigenvalues)."""
    R = hermitian_with_spectrum(C128, gen(3), [0.5, 1.0, 2.0, 5.0])
    g = grad(lambda r: eigengap_loss(r, 1, 10.0))(R)
    w, V = torch.linalg.eigh(R)
    ref = V[:, 2:3] @ V[:, 2:3].mH - V[:, 3:] @ V[:, 3:].mH
    assert torch.allclose(g, ref, atol=1e-12)
    assert torch.allclose(grad(lambda r: eigengap_loss(r, 1, 0.5))(R), torch.zeros_like(R))


def test_degenerate_floor_gives_finite_subgradient():
    """Flat floor (lambda_{k+1} repeated 10 times): the maximum of the cluster is not
    differentiable; the gradient is finite and a valid subgradient: restricted to the floor it
    is +q q^H for a unit q in the floor (eigenvalues 0, ..., 0, 1), on the signal -v_k v_k^H.
    (What torch.linalg.eigh's own gradient does at this tie depends on the LAPACK build and CPU
    kernel, finite on some machines, NaN on others, so it is not asserted here.)"""
    R = hermitian_with_spectrum(C128, gen(4), [1.0] * 10 + [4.0, 6.0, 7.0, 9.0])
    g = grad(lambda r: eigengap_loss(r, 4, 5.0))(R)
    assert torch.isfinite(g).all()
    w, V = torch.linalg.eigh(R)
    En, vk = V[:, :10], V[:, 10:11]
    ev = torch.linalg.eigvalsh(En.mH @ g @ En)
    assert torch.allclose(ev, torch.tensor([0.0] * 9 + [1.0], dtype=F64), atol=1e-10)
    assert torch.allclose(vk.mH @ g @ vk, -torch.ones(1, 1, dtype=C128), atol=1e-10)


def test_vmap_and_single_precision():
    R = randn(C128, gen(5), 3, 5, 5)
    ks = torch.tensor([1, 2, 3])
    gv = vmap(grad(lambda r, k: eigengap_loss(r, k, 10.0)))(R, ks)
    g = grad(lambda r: eigengap_loss(r, ks, 10.0, reduction="sum"))(R)
    assert torch.allclose(gv, g, atol=1e-12)
    g32 = grad(lambda r: eigengap_loss(r, ks, 10.0, reduction="sum"))(R.to(C64))
    assert g32.dtype == C64 and torch.allclose(g32.to(C128), g, atol=1e-5)


def test_bad_input():
    R = torch.eye(4, dtype=F64)
    for k in (0, 4):
        with pytest.raises(InputError, match=r"k: expected 1 <= k <= n - 1 = 3"):
            eigengap_loss(R, k, 1.0)
    with pytest.raises(InputError, match="k: every entry must satisfy"):
        eigengap_loss(R.expand(2, 4, 4), torch.tensor([1, 4]), 1.0)
    with pytest.raises(InputError, match="k: expected an integer tensor"):
        eigengap_loss(R, torch.tensor(1.0), 1.0)
    with pytest.raises(InputError, match="k: shape"):
        eigengap_loss(R.expand(2, 4, 4), torch.tensor([1, 2, 3]), 1.0)
    with pytest.raises(InputError, match="reduction"):
        eigengap_loss(R, 1, 1.0, reduction="max")
    with pytest.raises(InputError, match="R: expected a square matrix"):
        eigengap_loss(torch.ones(3, 4, dtype=F64), 1, 1.0)
    with pytest.raises(InputError, match="R: contains"):
        eigengap_loss(torch.full((3, 3), float("nan"), dtype=F64), 1, 1.0)
    with pytest.raises(InputError, match="margin: expected a real"):
        eigengap_loss(R, 1, 1j)
