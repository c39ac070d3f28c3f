"""The frequency response ``H(i w)`` / ``H(e^{i w})`` of a dense system: one batched LU of
``s I - A`` per frequency (``torch.linalg.lu_factor_ex``, differentiable), a pole at a frequency a
``SingularEquationError`` (NaN and a warning inside ``torch.func``); a sparse system takes the
sparse route (``control.large``)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..._errors import InputError, SingularEquationError, TransformCheckWarning
from ..._utils import as_tensor, is_wrapped, warn_once
from ..system._route import sparse_route
from ..system._statespace import StateSpace, check_system, fmt_complex


@sparse_route("frequency_response")
def frequency_response(sys: StateSpace, w) -> Tensor:
    """Transfer function at the frequencies ``w`` (real, finite, (K,)): ``H(i w)`` (continuous) or
    ``H(e^{i w})`` (discrete, ``w`` in radians per sample).

    Args:
        sys: a ``StateSpace`` (or a system ``as_system`` converts), batched or not; or a
            ``SparseSystem`` (above ``SPARSE_CROSSOVER`` states: one sparse LU per frequency,
            ``control.large``).
        w: (K,) real, finite frequencies (tensor or array).

    Returns:
        (..., K, p, m) complex tensor (complex64 for float32 systems, else complex128);
        differentiable in the matrices.

    Raises:
        InputError: ``w`` not a real 1-D tensor, or with a NaN/infinite entry.
        SingularEquationError: a frequency is a pole (``s I - A`` exactly singular).

    Example::

        import torch
        from difflinalg.control import builtin_model, frequency_response

        G = frequency_response(builtin_model("random"), torch.logspace(-2, 2, 5))
        assert G.shape == (5, 2, 2) and G.is_complex()
    """
    sys = check_system(sys)
    w = as_tensor(w, "w")
    if w.is_complex() or w.ndim != 1:
        raise InputError(f"w: expected a real 1-D tensor of frequencies, got shape {tuple(w.shape)} "
                         f"and dtype {w.dtype}")
    if not is_wrapped(w) and not bool(torch.isfinite(w).all()):
        k = int(torch.nonzero(~torch.isfinite(w))[0])
        raise InputError(f"w: expected finite frequencies, got w[{k}] = {float(w[k])}; remove it")
    cdt = torch.promote_types(sys.dtype, torch.complex64)
    w = w.to(dtype=torch.empty((), dtype=cdt).real.dtype, device=sys.A.device)
    s = torch.polar(torch.ones_like(w), w) if sys.discrete else torch.complex(torch.zeros_like(w), w)
    A, B, C, D = (x.to(cdt) for x in sys.matrices())
    n = sys.order
    eye = torch.eye(n, dtype=cdt, device=A.device)
    M = s[:, None, None] * eye - A[..., None, :, :]
    LU, piv, info = torch.linalg.lu_factor_ex(M)
    if not is_wrapped(info) and bool((info > 0).any()):
        k = int(torch.nonzero(info > 0)[0, -1])
        raise SingularEquationError(
            f"w: frequency w[{k}] = {float(w[k]):.6g} is a pole of the system ({fmt_complex(s[k])} is an "
            "eigenvalue of A): the transfer function is infinite there; evaluate beside it")
    X = torch.linalg.lu_solve(LU, piv, B[..., None, :, :])  # the lu_solve of ``_solve``, factor kept
    if is_wrapped(info):  # no raising inside torch.func (docs/conventions.md): NaN at a pole
        warn_once("frequency_response-pole", "frequency_response: inside torch.func the checks for a "
                  "frequency at a pole or not finite cannot raise: the response there is NaN instead",
                  TransformCheckWarning)
        X = torch.where((info > 0)[..., None, None], torch.full_like(X, float("nan")), X)
    return C[..., None, :, :] @ X + D[..., None, :, :]
