r"""``LTISystem``: what every linear time-invariant system of ``control`` shares, dense or sparse.

Two kinds of systems derive from it (docs/architecture.md, "Sparse and descriptor systems"):

* ``StateSpace``: torch tensors ``(A, B, C, D)``, batched, differentiable; a dense descriptor
  matrix ``E`` is folded in at construction.
* ``SparseSystem``: one large system ``E x' = A x + B u`` with ``scipy.sparse`` ``A`` and ``E``,
  float64/complex128 NumPy data, not differentiated.

``isinstance(x, StateSpace)`` therefore means "dense torch tensors" and never lies to code that
uses ``x.A`` as a tensor; code that accepts either kind checks ``isinstance(x, LTISystem)``.
"""

from __future__ import annotations

from ..._errors import InputError

TIMES = ("continuous", "discrete")


def check_time(time: str | None, dt) -> tuple[str, float | None]:
    """``(time, dt)`` from a constructor's arguments, python-control's ``dt`` convention included
    (``0``: continuous; ``True`` or ``None`` with ``time="discrete"``: discrete, period unspecified)."""
    if time is not None and time not in TIMES:
        raise InputError(f"time: expected 'continuous' or 'discrete', got {time!r}")
    if dt is True:
        dt = None
        time = time or "discrete"
    elif dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (dt >= 0 and dt < float("inf")):
            raise InputError(f"dt: expected a sampling period >= 0 (0 for continuous time), or None/True for "
                             f"an unspecified period, got {dt!r}")
        dt = float(dt)
    if time is None:
        time = "discrete" if dt else "continuous"
    if time == "continuous":
        if dt:
            raise InputError(f"dt: a continuous-time system has dt = 0, got {dt!r}; pass time='discrete' "
                             "for a sampled system")
        return time, 0.0
    if dt == 0.0:
        raise InputError("dt: a discrete-time system needs a positive sampling period (or None when "
                         "unspecified), got 0")
    return time, dt


def fmt_complex(z: complex) -> str:
    """``z`` with 6 significant digits (real part only when the imaginary part is 0), for messages."""
    z = complex(z)
    if z.imag == 0:
        return f"{z.real:.6g}"
    return f"{z.real:.6g}{z.imag:+.6g}j"


class LTISystem:
    """Base of ``StateSpace`` (dense) and ``SparseSystem`` (sparse, descriptor): sizes, time domain.

    Subclasses set ``A``, ``B``, ``C``, ``D``, ``time`` and ``dt``; the properties below read them.
    """

    time: str
    dt: float | None

    @property
    def order(self) -> int:
        """Number of states n."""
        return self.A.shape[-1]

    @property
    def n_inputs(self) -> int:
        """Number of inputs m (columns of B)."""
        return self.B.shape[-1]

    @property
    def n_outputs(self) -> int:
        """Number of outputs p (rows of C)."""
        return self.C.shape[-2]

    @property
    def discrete(self) -> bool:
        """True for a discrete-time system (``time == "discrete"``)."""
        return self.time == "discrete"
