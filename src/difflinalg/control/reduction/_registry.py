"""The reductor contract and registry: every reductor is ``reduce(F, r, **options) -> ReductionResult``.

A new reductor is a function with that signature (``F`` a ``StateSpace``, ``r`` the order, keyword
options) returning ``ReductionResult`` with at least ``model``, ``error`` (absolute H2 error),
``relative_error``, ``seconds``, ``reductor`` (its registry name) and its own data in ``details``; it is
added to ``REDUCTORS`` below, which the command line (``difflinalg reduce --compare``) and ``reduce``
read (docs/architecture.md, "Adding a reductor").
"""

from __future__ import annotations

import time as _time
from typing import Protocol

from ..._errors import InputError
from ..analysis._norms import h2_error, h2_norm
from ..analysis._stability import decay_rate
from ..system._route import sparse_route
from ..system._statespace import StateSpace
from . import _balanced
from ._irka import irka
from ._rarl2._api import rarl2
from ._results import ReductionResult


class Reductor(Protocol):
    """What ``REDUCTORS`` holds: ``(F, r, **options) -> ReductionResult``."""

    def __call__(self, F: StateSpace, r: int, /, **options) -> ReductionResult:
        """Reduce ``F`` to order ``r``.

        Args:
            F: the target ``StateSpace``.
            r: the reduced order.
            **options: the reductor's own keyword options.

        Returns:
            ``ReductionResult`` (module docstring: the fields every reductor fills).
        """
        ...


@sparse_route("reduce_bt")
def reduce_bt(F: StateSpace, r: int) -> ReductionResult:
    """``balanced_truncation`` with the reductor contract: ``ReductionResult`` with ``reductor="bt"``,
    ``method="square-root"``, the error by ``h2_error`` and the Hankel singular values of ``F`` in
    ``details["hsv"]``.

    Args:
        F: a stable ``StateSpace`` (unbatched; continuous time with D = 0, or discrete time:
            its H2 error must be finite).
        r: the reduced order, below the minimal order of ``F``.

    Returns:
        ``ReductionResult`` (``grad_norm`` and ``rel_grad`` NaN: not an optimizer).

    Raises:
        UnstableSystemError, InputError: as ``balanced_truncation``; InputError also from
        ``h2_error`` for a continuous-time ``F`` with non-zero D.

    Example::

        from difflinalg.control import builtin_model, reduce_bt

        res = reduce_bt(builtin_model("random"), 4)
        assert res.model.order == 4 and res.details["hsv"].shape == (30,)
    """
    t0 = _time.perf_counter()
    # looked up on the module at call time: the CLI's tests interrupt it there
    H, hsv = _balanced.balanced_truncation(F, r, return_hsv=True)
    seconds = _time.perf_counter() - t0
    Fd = F.detach()
    err, nrm = float(h2_error(Fd, H.detach())), float(h2_norm(Fd))
    return ReductionResult(model=H, error=err, relative_error=err / nrm, grad_norm=float("nan"),
                           rel_grad=float("nan"), target_norm=nrm, seconds=seconds, method="square-root",
                           reductor="bt", stability_margin=decay_rate(H), details={"hsv": hsv})


#: name -> reductor (the contract: module docstring). ``difflinalg reduce --compare`` offers every
#: name but "rarl2" (which it always runs).
REDUCTORS: dict[str, Reductor] = {"rarl2": rarl2, "bt": reduce_bt, "irka": sparse_route("irka")(irka)}


def reduce(F: StateSpace, r: int, reductor: str = "rarl2", **options) -> ReductionResult:
    """Reduce ``F`` to order ``r`` with the reductor named ``reductor`` (``REDUCTORS``), passing it
    ``options`` (e.g. ``starts=`` for rarl2, ``max_iter=`` for irka).

    Args:
        F: the target system (as the reductor takes it).
        r: the reduced order.
        reductor: a name in ``REDUCTORS`` (``"rarl2"``, ``"bt"``, ``"irka"``).
        **options: keyword options of that reductor.

    Returns:
        The reductor's ``ReductionResult``.

    Raises:
        InputError: an unknown ``reductor``; otherwise what the reductor raises.

    Example::

        from difflinalg.control import builtin_model, reduce

        res = reduce(builtin_model("random"), 4, "bt")
        assert res.reductor == "bt" and res.relative_error < 1
    """
    if reductor not in REDUCTORS:
        raise InputError(f"reductor: unknown reductor {reductor!r}; choose from {sorted(REDUCTORS)}")
    return REDUCTORS[reductor](F, r, **options)
