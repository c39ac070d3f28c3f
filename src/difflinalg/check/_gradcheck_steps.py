"""The steps of ``gradcheck`` (``_gradcheck.py``, whose docstring has the tolerance model): the
point with its random cotangents, the reverse-mode quantities computed once, the directions, the
per-mode comparison of one input along one direction, and the records of the report.

``Checker`` holds what every step shares (the function restricted to the differentiated inputs,
``phi = Re <w, fn>``, the tolerances and the report). The random stream is drawn in a fixed order:
the cotangents ``w``, then ``v`` (second order), then the directions input by input, so a seed
reproduces the same checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from .._errors import InputError
from .._utils import real_dtype
from ._derivative import Derivative, derivative
from ._report import CheckRecord, GradcheckReport

# Multiple of the finite-difference error estimate allowed on top of atol + rtol * scale.
FD_SAFETY = 4.0


def realify(ys: Sequence[Tensor]) -> Tensor:
    """Real and imaginary parts of every tensor, flattened into one real vector."""
    parts = []
    for y in ys:
        if y.is_complex():
            parts += [y.real.reshape(-1), y.imag.reshape(-1)]
        else:
            parts.append(y.reshape(-1))
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    dt = parts[0].dtype
    for q in parts[1:]:
        dt = torch.promote_types(dt, q.dtype)
    return torch.cat([q.to(dt) for q in parts])


def is_diff(x) -> bool:
    return isinstance(x, Tensor) and (x.is_floating_point() or x.is_complex())


def randn_like(x: Tensor, gen: torch.Generator, imag: bool | None = None) -> Tensor:
    """A standard normal tensor like ``x`` (complex: both parts, or only one if ``imag`` is set)."""
    real = torch.randn(x.shape, generator=gen, dtype=real_dtype(x.dtype))
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


def _leaves(args) -> list[Tensor]:
    return [a.detach().requires_grad_(True) for a in args]


def _realgrad(val: Tensor, xs: list[Tensor], **kw) -> Tensor:
    """Realified gradient of a real scalar (zeros where it does not depend on an input)."""
    if not val.requires_grad:
        return realify([torch.zeros_like(x) for x in xs])
    gs = torch.autograd.grad(val, xs, allow_unused=True, **kw)
    return realify([torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)])


def _pairing(ws: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    """``Re sum_k <w_k, y_k>`` (PyTorch's complex convention), a real scalar."""
    return sum((torch.real(torch.sum(w.conj() * y)) for w, y in zip(ws, ys)), torch.zeros(()))


class Checker:
    """The shared state of one ``gradcheck`` call and its steps (see the module docstring)."""

    def __init__(self, fn: Callable, inputs: list, wrt: list[int], modes: tuple[str, ...], full: bool,
                 n_directions: int, p: int, max_step: float, gen: torch.Generator, rtol: float, atol: float):
        self.fn, self.wrt, self.modes, self.full = fn, wrt, modes, full
        self.n_directions, self.p, self.max_step, self.gen = n_directions, p, max_step, gen
        self.rtol, self.atol = rtol, atol
        self.primals = [x.detach() if isinstance(x, Tensor) else x for x in inputs]
        self.x0 = [self.primals[i] for i in wrt]
        with torch.no_grad():
            y0 = self.call(*self.x0)
        if not y0:
            raise InputError("fn: returned no floating-point or complex tensor")
        self.ws = tuple(randn_like(y, gen) for y in y0)
        self.w_real = realify(self.ws)
        self.need_second = any(m in modes for m in ("hvp", "hvp_rev"))
        self.vs = tuple(randn_like(x, gen) for x in self.x0) if self.need_second else ()
        self.v_real = realify(self.vs) if self.need_second else None
        self.report = GradcheckReport()

    # --- the function and its derivatives at a point ---------------------------------------------

    def call(self, *diff_args) -> tuple[Tensor, ...]:
        """``fn`` with the differentiated inputs replaced, its floating/complex output leaves."""
        args = list(self.primals)
        for i, a in zip(self.wrt, diff_args):
            args[i] = a
        out = self.fn(*args)
        return tuple(y for y in pytree.tree_leaves(out) if is_diff(y))

    def phi(self, *diff_args) -> Tensor:
        return _pairing(self.ws, self.call(*diff_args))

    def grad_vec(self, *diff_args) -> Tensor:
        """The realified reverse-mode gradient of ``phi``."""
        xs = _leaves(diff_args)
        with torch.enable_grad():
            return _realgrad(self.phi(*xs), xs)

    def at(self, j: int, xj: Tensor) -> list[Tensor]:
        args = list(self.x0)
        args[j] = xj
        return args

    def tangents(self, j: int, u: Tensor) -> tuple[Tensor, ...]:
        return tuple(u if k == j else torch.zeros_like(x) for k, x in enumerate(self.x0))

    # --- reverse-mode quantities, computed once (they do not depend on the direction) --------------

    def reverse_quantities(self) -> None:
        """``g_rev`` (gradient of phi) or ``J_rev`` (full Jacobian, one backward per real output
        coordinate) for "vjp"; ``hw_rev`` (``grad <v, grad phi>``) or ``H_rev`` (full Hessian of
        phi, one double backward per real input coordinate) for "hvp_rev"."""
        self.g_rev = self.J_rev = self.hw_rev = self.H_rev = None
        x0 = self.x0
        if "vjp" in self.modes:
            if self.full:
                xs = _leaves(x0)
                with torch.enable_grad():
                    yr = realify(self.call(*xs))
                    self.J_rev = torch.stack([_realgrad(yr[k], xs, retain_graph=True) for k in range(yr.numel())]) \
                        if yr.numel() else torch.zeros(0, realify(x0).numel())
            else:
                self.g_rev = self.grad_vec(*x0)
        if "hvp_rev" in self.modes:
            xs = _leaves(x0)
            with torch.enable_grad():
                val = self.phi(*xs)
                if val.requires_grad:
                    gs = torch.autograd.grad(val, xs, create_graph=True, allow_unused=True)
                    gs = [torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)]
                else:
                    gs = [torch.zeros_like(x) for x in xs]
                if self.full:
                    gr = realify(gs)
                    self.H_rev = torch.stack([_realgrad(gr[k], xs, retain_graph=True) for k in range(gr.numel())])
                else:
                    self.hw_rev = _realgrad(_pairing(self.vs, gs), xs)

    def directions(self, j: int) -> Iterator[tuple[str, Tensor]]:
        """Labelled directions for input ``j``: every real (and imaginary) coordinate with
        ``full``, else ``n_directions`` random ones (a complex input: a real and an imaginary one)."""
        x = self.x0[j]
        if self.full:
            n = x.numel()
            parts = [("re", False)] + ([("im", True)] if x.is_complex() else [])
            for label, imag in parts:
                for k in range(n):
                    e = torch.zeros(n, dtype=x.dtype, device=x.device)
                    e[k] = 1j if imag else 1.0
                    yield f"{label}[{k}]", e.reshape(x.shape)
        else:
            for d in range(self.n_directions):
                if x.is_complex():
                    yield f"re#{d}", randn_like(x, self.gen, imag=False)
                    yield f"im#{d}", randn_like(x, self.gen, imag=True)
                else:
                    yield f"rand#{d}", randn_like(x, self.gen)

    # --- comparisons -------------------------------------------------------------------------------

    def record(self, name: str, mode: str, label: str, ad: Tensor, fd: Tensor, fd_err: Tensor,
               scale_extra: float = 0.0) -> None:
        """Compare ``ad`` with ``fd`` componentwise (``atol + rtol * scale + FD_SAFETY * fd_err``)
        and append the record."""
        atol, rtol = self.atol, self.rtol
        ad, fd, fd_err = (t.detach().to(torch.float64).reshape(-1) for t in (ad, fd, fd_err))
        diff = (ad - fd).abs()
        scale = max(float(fd.abs().max()) if fd.numel() else 0.0,
                    float(ad.abs().max()) if ad.numel() else 0.0, scale_extra)
        allowed = atol + rtol * scale + FD_SAFETY * fd_err
        if diff.numel():
            ratios = diff / allowed.clamp_min(1e-300)
            worst = int(ratios.argmax())
            mabs, ratio, tol = float(diff.max()), float(ratios[worst]), float(allowed[worst])
            ferr = float(fd_err.max())
        else:
            mabs = ratio = ferr = 0.0
            tol = atol + rtol * scale
        # Below atol / rtol a quantity is judged on the absolute scale (no tiny denominators).
        denom = max(scale, atol / rtol if rtol > 0 else 0.0, 1e-300)
        passed = bool((diff <= allowed).all()) and bool(torch.isfinite(ad).all())
        self.report.records.append(CheckRecord(name, mode, label, mabs, mabs / denom, ferr, tol, passed, ratio, denom))

    def _compare(self, rows: dict, name: str, mode: str, label: str, ad: Tensor, fd: Derivative) -> None:
        """A column comparison: recorded now, or (``full``) kept for one record per input and mode."""
        if self.full:
            rows.setdefault(mode, []).append((ad, fd.value, fd.error))
        else:
            self.record(name, mode, label, ad, fd.value, fd.error)

    def _projection(self, name: str, mode: str, label: str, ad_vec: Tensor, u_real: Tensor,
                    col: Derivative, weight: Tensor) -> None:
        """Reverse mode, projected: ``ad_vec . u`` against ``weight . col`` (``Derivative.dot``'s
        own error estimate), on the scale of either side's terms."""
        proj = col.dot(weight)
        scale = max(float((ad_vec * u_real).abs().sum()), float((weight * col.value).abs().sum()))
        self.record(name, mode, label, (ad_vec * u_real).sum(), proj.value, proj.error, scale)

    def first_order(self, rows: dict, name: str, j: int, label: str, u: Tensor, u_real: Tensor) -> None:
        """"jvp", "vjp" and "jvp2" of input ``j`` along ``u``."""
        x0, modes = self.x0, self.modes

        def along(xj):
            with torch.no_grad():
                return realify(self.call(*self.at(j, xj)))

        # Along x + t u: derivative sees the point itself, so it models the rounding of x + t u.
        col = derivative(along, x0[j], p=self.p, direction=u, max_step=self.max_step)
        tangents = self.tangents(j, u)
        if "jvp" in modes:
            _, ydot = torch.func.jvp(self.call, tuple(x0), tangents)
            self._compare(rows, name, "jvp", label, realify(ydot), col)
        if "vjp" in modes:
            if self.full:
                rows.setdefault("vjp", []).append((self.J_rev @ u_real, col.value, col.error))
            else:
                self._projection(name, "vjp", label, self.g_rev, u_real, col, self.w_real)
        if "jvp2" in modes:
            def jvp_along(xj):
                return realify(torch.func.jvp(self.call, tuple(self.at(j, xj)), tangents)[1])

            jjcol = derivative(jvp_along, x0[j], p=self.p, direction=u, max_step=self.max_step)
            _, y2 = torch.func.jvp(lambda *xs: torch.func.jvp(self.call, xs, tangents)[1], tuple(x0), tangents)
            self._compare(rows, name, "jvp2", label, realify(y2), jjcol)

    def second_order(self, rows: dict, name: str, j: int, label: str, u: Tensor, u_real: Tensor) -> None:
        """"hvp" (forward-over-reverse) and "hvp_rev" (double backward) of input ``j`` along ``u``,
        against the finite-difference derivative of the reverse-mode gradient."""
        x0 = self.x0
        gcol = derivative(lambda xj: self.grad_vec(*self.at(j, xj)), x0[j], p=self.p, direction=u,
                          max_step=self.max_step)
        if "hvp" in self.modes:
            argnums = tuple(range(len(x0)))
            _, gdot = torch.func.jvp(torch.func.grad(self.phi, argnums=argnums), tuple(x0), self.tangents(j, u))
            self._compare(rows, name, "hvp", label, realify(gdot), gcol)
        if "hvp_rev" in self.modes:
            if self.full:
                rows.setdefault("hvp_rev", []).append((self.H_rev @ u_real, gcol.value, gcol.error))
            else:
                self._projection(name, "hvp_rev", label, self.hw_rev, u_real, gcol, self.v_real)

    def check_input(self, j: int, name: str, modes_order: Sequence[str]) -> None:
        """Every mode of input ``j`` along each of its directions; with ``full``, one record per
        mode over all coordinates (in ``modes_order``)."""
        rows: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
        for label, u in self.directions(j):
            u_real = realify([u if k == j else torch.zeros_like(x) for k, x in enumerate(self.x0)])
            self.first_order(rows, name, j, label, u, u_real)
            if self.need_second:
                self.second_order(rows, name, j, label, u, u_real)
        for mode in modes_order:
            if mode in rows:
                ad, fd, fde = (torch.stack([r[c] for r in rows[mode]]) for c in range(3))
                self.record(name, mode, "full", ad, fd, fde)
