"""Every registered rule on CUDA tensors: forward and backward agree with the CPU, the results stay
on the device, and a path that only exists on the CPU either falls back (result on the input's
device) or raises a named difflinalg error -- never a raw "can't convert cuda tensor to numpy".

Skipped without a GPU (``-m cuda`` selects these tests; ``benchmarks/gpu.sh`` runs them with the GPU
benchmarks). No development machine of this project has had a GPU yet: these tests have not run.
"""

from __future__ import annotations

import pytest
import torch

import difflinalg
from difflinalg.check import cases

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def _first_generic_cases():
    seen: dict[str, object] = {}
    for c in cases():
        if not c.hard and c.op not in seen:
            seen[c.op] = c
    return sorted(seen.values(), key=lambda c: c.op)


def _to(x, device):
    return x.to(device) if isinstance(x, torch.Tensor) else x


def _leaves(out):
    return [y for y in torch.utils._pytree.tree_leaves(out)
            if isinstance(y, torch.Tensor) and (y.is_floating_point() or y.is_complex())]


@pytest.mark.parametrize("case", _first_generic_cases(), ids=lambda c: f"{c.op}/{c.name}")
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=["f64", "c128"])
def test_rule_on_cuda_matches_cpu(case, dtype):
    if dtype not in case.dtypes:
        pytest.skip(f"{case.op}/{case.name} is registered without {dtype}")
    inputs = case.make_inputs(dtype, torch.Generator().manual_seed(0))

    def run(device):
        xs = [_to(x, device) for x in inputs]
        diff = [x.requires_grad_() for x in xs if isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())]
        ys = _leaves(case.fn(*xs))
        loss = sum(torch.real(y).sum() + (torch.imag(y).sum() if y.is_complex() else 0) for y in ys)
        grads = torch.autograd.grad(loss, diff, allow_unused=True)
        return ys, grads

    ys_cpu, g_cpu = run("cpu")
    try:
        ys_gpu, g_gpu = run("cuda")
    except difflinalg.DifflinalgError as exc:  # a documented CPU-only path: named, and says so
        assert "CPU" in str(exc) or "cpu" in str(exc), exc
        return
    for a, b in zip(ys_cpu, ys_gpu):
        assert b.device.type == "cuda"
        assert torch.allclose(a, b.cpu(), rtol=1e-8, atol=1e-10)
    for a, b in zip(g_cpu, g_gpu):
        if a is not None:
            assert b is not None and b.device.type == "cuda"
            assert torch.allclose(a, b.cpu(), rtol=1e-7, atol=1e-9)


def test_no_host_round_trip_in_a_differentiable_path():
    """A batched eigh forward+backward on the GPU does not copy its data to the host (a sync per
    call is allowed for the checks; a device-to-host copy of the matrices is not)."""
    A = torch.randn(64, 32, 32, dtype=torch.float64, device="cuda")
    A = (A + A.mT).requires_grad_()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        w, V = difflinalg.eigh(A)
        (w.sum() + (V.abs() ** 2).sum()).backward()
    big_copies = [e for e in prof.events() if "DtoH" in e.name and getattr(e, "device_memory_usage", 0) > 1 << 16]
    assert not big_copies, [e.name for e in big_copies]
