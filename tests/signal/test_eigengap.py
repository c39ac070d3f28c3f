"""``eigengap_loss``: values, per-sample k, reductions, derivatives (generic and with a degenerate
rest of the spectrum, where torch.linalg.eigh-based code gets NaN), subgradient at a flat floor,
bad input. ``cluster_mean_gap_loss``: values, the projector gradient on a flat floor (exact,
basis independent), second order at ties (registered cases), float32."""

import pytest
import torch
from torch.func import grad, vmap

from difflinalg import InputError
from difflinalg.signal import cluster_mean_gap_loss, eigengap_loss
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


def test_degenerate_floor_gives_a_basis_free_subgradient():
    """Flat floor (lambda_{k+1} repeated 10 times): the maximum of the cluster is not
    differentiable; the loss reads it as the cluster's mean, so the gradient is the valid
    subgradient P_floor / 10 (eigenvalues 0.1 on the floor, whichever basis the eigensolver
    picked; a convex combination of the v v^H of the floor) and -v_k v_k^H on the signal side.
    It passes eigh's tie checks (in the exact class) in plain autograd and under torch.func."""
    R = hermitian_with_spectrum(C128, gen(4), [1.0] * 10 + [4.0, 6.0, 7.0, 9.0])
    g = grad(lambda r: eigengap_loss(r, 4, 5.0))(R)
    w, V = torch.linalg.eigh(R)
    En, vk = V[:, :10], V[:, 10:11]
    assert torch.allclose(En.mH @ g @ En, 0.1 * torch.eye(10, dtype=C128), atol=1e-10)
    assert torch.allclose(vk.mH @ g @ vk, -torch.ones(1, 1, dtype=C128), atol=1e-10)
    assert torch.allclose(g, En @ En.mH / 10 - vk @ vk.mH, atol=1e-10)
    R1 = R.clone().requires_grad_()
    g_ad, = torch.autograd.grad(eigengap_loss(R1, 4, 5.0), R1)
    assert torch.allclose(g_ad, g, atol=1e-12)
    assert float(eigengap_loss(R, 4, 5.0)) == pytest.approx(2.0, abs=1e-12)  # 5 - (4 - 1)


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


def test_cluster_mean_values():
    w = torch.tensor([[0.0, 1.0, 1.5, 4.0, 9.0], [2.0, 2.1, 2.2, 2.3, 8.0]], dtype=F64)
    R = torch.stack([hermitian_with_spectrum(C128, gen(1), w[0]), hermitian_with_spectrum(C128, gen(2), w[1])])
    out = cluster_mean_gap_loss(R, torch.tensor([1, 2]), 10.0, reduction="none")
    ref = torch.tensor([10.0 - (9.0 - 6.5 / 4), 10.0 - (2.3 - 6.3 / 3)], dtype=F64)
    assert torch.allclose(out, ref, atol=1e-12)
    out = cluster_mean_gap_loss(R, 2, 10.0, signal="mean", reduction="none")
    ref = torch.tensor([10.0 - (6.5 - 2.5 / 3), 10.0 - (5.15 - 6.3 / 3)], dtype=F64)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(cluster_mean_gap_loss(R, 2, 10.0, signal="mean"), ref.mean(), atol=1e-12)
    assert torch.equal(cluster_mean_gap_loss(R, 1, 0.5), torch.zeros((), dtype=F64))


@pytest.mark.parametrize("dtype", [F64, C128])
def test_cluster_mean_gradient_on_flat_floor_is_the_noise_projector(dtype):
    """Active hinge, floor of 10 exactly equal eigenvalues: dL/dR = E_n E_n^H / 10 - v_k v_k^H
    (signal="smallest") or E_n E_n^H / 10 - U_s U_s^H / 4 ("mean", with a repeated signal pair),
    whatever basis of the floor (and of the pair) the eigensolver returns."""
    R = hermitian_with_spectrum(dtype, gen(4), [1.0] * 10 + [4.0, 6.0, 6.0, 9.0])
    w, V = torch.linalg.eigh(R)
    En = V[:, :10]
    Pn = En @ En.mH / 10
    g = grad(lambda r: cluster_mean_gap_loss(r, 4, 50.0))(R)
    vk = V[:, 10:11]
    assert torch.allclose(g, Pn - vk @ vk.mH, atol=1e-12)
    g = grad(lambda r: cluster_mean_gap_loss(r, 4, 50.0, signal="mean"))(R)
    Us = V[:, 10:]
    assert torch.allclose(g, Pn - Us @ Us.mH / 4, atol=1e-12)


def test_cluster_mean_vmap_and_single_precision():
    R = hermitian_with_spectrum(C128, gen(5), [1.0] * 4 + [3.0, 5.0, 7.0], batch=(3,))
    ks = torch.tensor([1, 2, 3])
    gv = vmap(grad(lambda r, k: cluster_mean_gap_loss(r, k, 10.0)))(R, ks)
    g = grad(lambda r: cluster_mean_gap_loss(r, ks, 10.0, reduction="sum"))(R)
    assert torch.allclose(gv, g, atol=1e-12)
    g32 = grad(lambda r: cluster_mean_gap_loss(r, ks, 10.0, reduction="sum"))(R.to(C64))
    # complex64: eigenvector error ~ n eps / gap (gap 2): a few 1e-7 relative
    assert g32.dtype == C64 and (g32.to(C128) - g).norm() <= 1e-5 * g.norm()
