r"""``gradcheck``: reverse, forward and second-order derivatives against finite differences.

For a function ``fn(*inputs)`` returning one tensor or a (nested) tuple of tensors, each
differentiable input ``x_i`` is perturbed along a random direction ``u`` (a complex input along a
purely real and a purely imaginary direction, so that a missing conjugate or a wrong sign of an
imaginary part cannot cancel). ``derivative`` gives the column ``J u`` of the realified Jacobian
(real and imaginary parts of every output) with an error estimate, and

* ``"jvp"``: ``torch.func.jvp`` must reproduce the whole column ``J u``;
* ``"vjp"``: for a random cotangent ``w``, ``<J^T w, u>`` from reverse mode must equal ``w . J u``
  (complex gradients in PyTorch's convention: ``dL = Re sum(conj(g) du)``);
* ``"hvp"``: forward-over-reverse, ``jvp(grad(phi))`` with ``phi = Re <w, fn>``, must equal the
  finite-difference derivative of the reverse-mode gradient along ``u``;
* ``"hvp_rev"``: reverse-over-reverse (double backward), ``grad(<v, grad phi>) . u``, against the
  same reference.

``full=True`` replaces the random directions by every real coordinate (and every imaginary one of a
complex input) and the cotangent by every output coordinate: the full Jacobians are compared.

A case passes when ``|ad - fd| <= atol + rtol * scale + 4 * fd_error`` where ``scale`` is the size of
the quantities compared (so a derivative that happens to be near zero is not judged by a tiny
denominator) and ``fd_error`` the finite-difference error estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from .._errors import InputError
from ._derivative import derivative

MODES = ("vjp", "jvp", "hvp", "hvp_rev")


class GradcheckError(AssertionError):
    """A derivative disagrees with finite differences (names the input, mode and mismatch)."""

    def __init__(self, message: str, report: "GradcheckReport"):
        super().__init__(message)
        self.report = report


@dataclass
class CheckRecord:
    input: str
    mode: str
    direction: str
    max_abs_err: float
    max_rel_err: float
    fd_err: float
    tol: float
    passed: bool


@dataclass
class GradcheckReport:
    records: list[CheckRecord] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)

    def max_rel_err(self, mode: str | None = None) -> float:
        errs = [r.max_rel_err for r in self.records if mode is None or r.mode == mode]
        return max(errs, default=0.0)

    def fd_err(self, mode: str | None = None) -> float:
        errs = [r.fd_err for r in self.records if mode is None or r.mode == mode]
        return max(errs, default=0.0)

    def failures(self) -> list[CheckRecord]:
        return [r for r in self.records if not r.passed]

    def to_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.records]

    def __str__(self) -> str:
        lines = [f"{'input':<12} {'mode':<8} {'direction':<10} {'max_abs':>10} {'max_rel':>10} {'fd_err':>10}  ok"]
        for r in self.records:
            lines.append(
                f"{r.input:<12} {r.mode:<8} {r.direction:<10} {r.max_abs_err:10.2e} "
                f"{r.max_rel_err:10.2e} {r.fd_err:10.2e}  {'yes' if r.passed else 'NO'}"
            )
        return "\n".join(lines)


def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing derivatives with finite differences in ``dtype``."""
    real = torch.empty((), dtype=dtype).real.dtype
    if real == torch.float64:
        return 1e-7, 1e-12
    if real == torch.float32:
        return 2e-3, 1e-6
    return 2e-2, 1e-3


def _realify(ys: Sequence[Tensor]) -> Tensor:
    parts = []
    for y in ys:
        if y.is_complex():
            parts += [y.real.reshape(-1), y.imag.reshape(-1)]
        else:
            parts.append(y.reshape(-1))
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    dt = torch.promote_types(*[p.dtype for p in parts]) if len(parts) > 1 else parts[0].dtype
    return torch.cat([p.to(dt) for p in parts])


def _is_diff(x) -> bool:
    return isinstance(x, Tensor) and (x.is_floating_point() or x.is_complex())


def _randn_like(x: Tensor, gen: torch.Generator, imag: bool | None = None) -> Tensor:
    real = torch.randn(x.shape, generator=gen, dtype=x.real.dtype if x.is_complex() else x.dtype)
    if x.is_complex():
        other = torch.randn(x.shape, generator=gen, dtype=real.dtype)
        if imag is None:
            z = torch.complex(real, other)
        elif imag:
            z = torch.complex(torch.zeros_like(real), real)
        else:
            z = torch.complex(real, torch.zeros_like(real))
        return z.to(x.device)
    return real.to(x.device)


def gradcheck(
    fn: Callable,
    *inputs,
    modes: Sequence[str] = ("vjp", "jvp", "hvp"),
    rtol: float | None = None,
    atol: float | None = None,
    wrt: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    full: bool = False,
    n_directions: int = 1,
    p: int = 5,
    max_step: float = 0.1,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckReport:
    """Compare the derivatives of ``fn`` at ``inputs`` with finite differences.

    Args:
        fn: function of the inputs returning a tensor or a (nested) tuple/list of tensors.
        inputs: the point; floating and complex tensors are differentiated (or those in ``wrt``).
        modes: any of "vjp", "jvp", "hvp" (forward-over-reverse), "hvp_rev" (double backward).
        rtol, atol: tolerances; default from the inputs' dtype (``default_tolerances``).
        wrt: indices of the inputs to differentiate (default: all floating/complex tensors).
        names: names of the inputs for the report and error messages.
        full: compare full Jacobians instead of random projections (for small inputs).
        n_directions: random directions per input (complex inputs get a real and an imaginary
            direction for each).
        p: stencil size of the finite differences.
        max_step: largest finite-difference step (keep the perturbed point in fn's domain).
        seed: seed of the random directions and cotangents.
        raise_on_failure: raise ``GradcheckError`` on a mismatch (else only report it).

    Returns:
        A ``GradcheckReport`` with one record per input, direction and mode.
    """
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise InputError(f"modes: unknown mode(s) {bad}; choose from {MODES}")
    if not callable(fn):
        raise InputError(f"fn: expected a callable, got {type(fn).__name__}")
    inputs = list(inputs)
    if wrt is None:
        wrt = [i for i, x in enumerate(inputs) if _is_diff(x)]
    else:
        wrt = list(wrt)
        for i in wrt:
            if not (0 <= i < len(inputs)) or not _is_diff(inputs[i]):
                raise InputError(f"wrt: input {i} is not a floating-point or complex tensor")
    if not wrt:
        raise InputError("inputs: no floating-point or complex tensor to differentiate")
    for i in wrt:
        if not bool(torch.isfinite(inputs[i]).all()):
            raise InputError(f"inputs[{i}]: contains non-finite values; gradcheck needs a finite point")
    if names is None:
        names = [f"input {i}" for i in range(len(inputs))]
    dtypes = [inputs[i].dtype for i in wrt]
    rt, at = default_tolerances(max(dtypes, key=lambda d: torch.finfo(torch.empty((), dtype=d).real.dtype).eps))
    rtol = rt if rtol is None else rtol
    atol = at if atol is None else atol
    gen = torch.Generator().manual_seed(seed)
    primals = [x.detach() for x in inputs]

    def call(*diff_args):
        args = list(primals)
        for i, a in zip(wrt, diff_args):
            args[i] = a
        out = fn(*args)
        leaves = [y for y in pytree.tree_leaves(out) if _is_diff(y)]
        return tuple(leaves)

    with torch.no_grad():
        y0 = call(*[primals[i] for i in wrt])
    if not y0:
        raise InputError("fn: returned no floating-point or complex tensor")
    ws = tuple(_randn_like(y, gen) for y in y0)
    w_real = _realify(ws)

    def phi(*diff_args):
        ys = call(*diff_args)
        return sum((torch.real(torch.sum(w.conj() * y)) for w, y in zip(ws, ys)), torch.zeros(()))

    x0 = [primals[i] for i in wrt]
    need_second = any(m in modes for m in ("hvp", "hvp_rev"))
    vs = tuple(_randn_like(x, gen) for x in x0) if need_second else ()
    v_real = _realify(vs) if need_second else None

    def grad_vec(*diff_args) -> Tensor:
        xs = [a.detach().requires_grad_(True) for a in diff_args]
        with torch.enable_grad():
            val = phi(*xs)
            gs = torch.autograd.grad(val, xs, allow_unused=True)
        return _realify([torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)])

    g_rev = None
    if "vjp" in modes:
        g_rev = grad_vec(*x0)

    def directions(j: int):
        x = x0[j]
        if full:
            n = x.numel()
            parts = [("re", False)] + ([("im", True)] if x.is_complex() else [])
            for label, imag in parts:
                for k in range(n):
                    e = torch.zeros(n, dtype=x.dtype, device=x.device)
                    e[k] = 1j if imag else 1.0
                    yield f"{label}[{k}]", e.reshape(x.shape)
        else:
            for d in range(n_directions):
                if x.is_complex():
                    yield f"re#{d}", _randn_like(x, gen, imag=False)
                    yield f"im#{d}", _randn_like(x, gen, imag=True)
                else:
                    yield f"rand#{d}", _randn_like(x, gen)

    report = GradcheckReport()

    def record(name, mode, label, ad, fd, fd_err, scale_extra=0.0):
        diff = (ad - fd).abs()
        scale = max(float(fd.abs().max()) if fd.numel() else 0.0, float(ad.abs().max()) if ad.numel() else 0.0, scale_extra)
        mabs = float(diff.max()) if diff.numel() else 0.0
        ferr = float(fd_err.max()) if fd_err.numel() else 0.0
        tol = atol + rtol * scale + 4.0 * ferr
        # Below atol / rtol a quantity is judged on the absolute scale (no tiny denominators).
        rel = mabs / max(scale, atol / rtol)
        report.records.append(CheckRecord(name, mode, label, mabs, rel, ferr, tol, mabs <= tol))

    full_rows: dict[tuple[int, str], list] = {}
    for j, i in enumerate(wrt):
        name = names[i]
        for label, u in directions(j):
            def along(t, j=j, u=u):
                args = list(x0)
                args[j] = x0[j] + t * u
                with torch.no_grad():
                    return _realify(call(*args))

            col = derivative(along, torch.zeros((), dtype=x0[j].real.dtype), p=p, max_step=max_step)
            if "jvp" in modes:
                tangents = tuple(u if k == j else torch.zeros_like(x) for k, x in enumerate(x0))
                _, ydot = torch.func.jvp(call, tuple(x0), tangents)
                jcol = _realify(ydot)
                record(name, "jvp", label, jcol, col.value, col.error)
            if "vjp" in modes:
                u_real = _realify([u if k == j else torch.zeros_like(x) for k, x in enumerate(x0)])
                ad = (g_rev * u_real).sum()
                fd = (w_real * col.value).sum()
                fde = (w_real.abs() * col.error).sum()
                scale = float((g_rev.abs() * u_real.abs()).sum())
                if full:
                    full_rows.setdefault((j, "vjp"), []).append((label, ad, fd, fde))
                else:
                    record(name, "vjp", label, ad.reshape(1), fd.reshape(1), fde.reshape(1), scale)
            if need_second:
                def grad_along(t, j=j, u=u):
                    args = list(x0)
                    args[j] = x0[j] + t * u
                    return grad_vec(*args)

                gcol = derivative(grad_along, torch.zeros((), dtype=x0[j].real.dtype), p=p, max_step=max_step)
                if "hvp" in modes:
                    tangents = tuple(u if k == j else torch.zeros_like(x) for k, x in enumerate(x0))
                    argnums = tuple(range(len(x0)))
                    _, gdot = torch.func.jvp(torch.func.grad(phi, argnums=argnums), tuple(x0), tangents)
                    record(name, "hvp", label, _realify(gdot), gcol.value, gcol.error)
                if "hvp_rev" in modes:
                    xs = [a.detach().requires_grad_(True) for a in x0]
                    with torch.enable_grad():
                        gs = torch.autograd.grad(phi(*xs), xs, create_graph=True, allow_unused=True)
                        s = sum(
                            (torch.real(torch.sum(v.conj() * g)) for v, g in zip(vs, gs) if g is not None),
                            torch.zeros(()),
                        )
                        hs = torch.autograd.grad(s, xs, allow_unused=True) if s.requires_grad else [None] * len(xs)
                    hs = [torch.zeros_like(x) if h is None else h for x, h in zip(xs, hs)]
                    u_real = _realify([u if k == j else torch.zeros_like(x) for k, x in enumerate(x0)])
                    ad = (_realify(hs) * u_real).sum()
                    fd = (v_real * gcol.value).sum()
                    fde = (v_real.abs() * gcol.error).sum()
                    scale = float((_realify(hs).abs() * u_real.abs()).sum())
                    record(name, "hvp_rev", label, ad.reshape(1), fd.reshape(1), fde.reshape(1), scale)
    for (j, mode), rows in full_rows.items():
        ad = torch.stack([r[1] for r in rows])
        fd = torch.stack([r[2] for r in rows])
        fde = torch.stack([r[3] for r in rows])
        record(names[wrt[j]], mode, "full", ad, fd, fde)

    if raise_on_failure and not report.passed:
        worst = max(report.failures(), key=lambda r: r.max_abs_err / max(r.tol, 1e-300))
        raise GradcheckError(
            f"gradcheck failed: {worst.mode} of {worst.input} (direction {worst.direction}) differs "
            f"from finite differences by {worst.max_abs_err:.3e} (relative {worst.max_rel_err:.3e}; "
            f"allowed {worst.tol:.3e}, finite-difference error estimate {worst.fd_err:.3e}); "
            f"{len(report.failures())} of {len(report.records)} checks failed\n{report}",
            report,
        )
    return report
