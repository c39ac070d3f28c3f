r"""Steering vectors of uniform linear and uniform rectangular arrays (narrowband, far field).

Uniform linear array (ULA) of ``n`` elements on the x axis at ``x_m = m d`` (``m = 0 .. n-1``, ``d``
the spacing in wavelengths), direction ``theta`` measured from broadside (radians)::

    a_m(theta) = exp(2j pi d m sin(theta))

Uniform rectangular array (URA) of ``nx x ny`` elements in the x-y plane at ``(ix dx, iy dy)``,
direction given by the polar angle ``theta`` from the array normal (z axis) and the azimuth
``phi`` from the x axis, with the direction cosines ``u = sin(theta) cos(phi)``,
``v = sin(theta) sin(phi)``::

    a_{ix ny + iy}(theta, phi) = exp(2j pi (dx ix u + dy iy v))

i.e. ``kron(a_x(u), a_y(v))`` with the x index the slow one. Element 0 is the phase reference;
the vectors are not normalized (``|a_m| = 1``, ``||a||^2 = n``). The sign convention
``exp(+2j pi ...)`` must match the one of the data model ``x = a(theta) s + noise``; MUSIC
spectra of data generated with these vectors peak at the true directions.

Both functions are differentiable with respect to the angles (plain torch operations) and return
the vectors as the columns of a matrix, the layout ``music_spectrum`` takes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import as_tensor, check_finite, check_int

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _size(n, name: str) -> int:
    n = check_int(n, name, "a positive integer")
    if n < 1:
        raise InputError(f"{name}: expected a positive integer (number of array elements), got {n}")
    return n


def _spacing(d, name: str) -> float:
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
        raise InputError(f"{name}: expected a positive element spacing in wavelengths (e.g. 0.5), got {d!r}")
    return float(d)


def _angles(x, name: str) -> Tensor:
    t = as_tensor(x, name)
    if not t.is_floating_point():
        if t.is_complex():
            raise InputError(f"{name}: angles must be real (radians), got dtype {t.dtype}")
        t = t.to(torch.get_default_dtype())
    if t.dtype not in _COMPLEX:
        raise InputError(f"{name}: dtype {t.dtype} is not supported; use float32 or float64 (radians)")
    check_finite(t, name)
    return t.reshape(1) if t.ndim == 0 else t


def ula_steering(n: int, theta, *, spacing: float = 0.5) -> Tensor:
    """Steering vectors of an n-element uniform linear array, one column per angle.

    Args:
        n: number of elements, a positive integer.
        theta: angles from broadside in radians, finite, shape (..., G) (a scalar counts as
            G = 1); float32 gives complex64, float64 complex128 (integer angles are read in the
            default dtype).
        spacing: element spacing in wavelengths, a positive finite number (0.5: no grating lobes
            over [-pi/2, pi/2]).

    Returns:
        (..., n, G) complex, column g = ``exp(2j pi spacing m sin(theta_g))``, m = 0 .. n-1;
        differentiable with respect to ``theta``.

    Raises:
        InputError: ``n`` not a positive integer; ``spacing`` not a positive finite number;
            ``theta`` complex, non-finite, or of a dtype other than float32/float64 (e.g.
            float16).

    Example::

        import math
        import torch
        from difflinalg import signal

        a = signal.ula_steering(4, torch.tensor([0.0, math.pi / 6], dtype=torch.float64))
        assert a.shape == (4, 2) and a.dtype == torch.complex128
        assert torch.allclose(a[:, 0], torch.ones(4, dtype=torch.complex128))    # broadside
        assert torch.allclose(a[:, 1], torch.tensor([1, 1j, -1, -1j], dtype=torch.complex128))
    """
    n = _size(n, "n")
    d = _spacing(spacing, "spacing")
    theta = _angles(theta, "theta")
    m = torch.arange(n, dtype=theta.dtype, device=theta.device)
    phase = (2 * math.pi * d) * m[:, None] * torch.sin(theta)[..., None, :]
    return torch.complex(torch.cos(phase), torch.sin(phase))


def ura_steering(nx: int, ny: int, theta, phi, *, spacing: tuple[float, float] = (0.5, 0.5)) -> Tensor:
    """Steering vectors of an nx x ny uniform rectangular array, one column per direction.

    Args:
        nx, ny: elements along x and y, positive integers.
        theta: polar angles from the array normal (radians), finite, float32 or float64 (a scalar
            counts as G = 1), broadcasting with ``phi``.
        phi: azimuths from the x axis (radians), same dtype as ``theta``. The common shape
            (..., G) gives G directions; float32 gives complex64, float64 complex128.
        spacing: ``(dx, dy)`` in wavelengths, positive finite numbers.

    Returns:
        (..., nx * ny, G) complex; row ``ix * ny + iy`` is element ``(ix, iy)``:
        ``exp(2j pi (dx ix sin(theta) cos(phi) + dy iy sin(theta) sin(phi)))``; differentiable
        with respect to ``theta`` and ``phi``.

    Raises:
        InputError: ``nx`` or ``ny`` not a positive integer; ``spacing`` not a pair of positive
            finite numbers; ``theta`` or ``phi`` complex, non-finite, of an unsupported dtype, of
            different dtypes, or of shapes that do not broadcast.

    Example::

        import torch
        from difflinalg import signal

        theta = torch.tensor([0.5, 0.2], dtype=torch.float64)
        phi = torch.tensor([0.0, 1.0], dtype=torch.float64)
        a = signal.ura_steering(2, 3, theta, phi)    # (6, 2): element (ix, iy) in row ix * 3 + iy
        assert a.shape == (6, 2) and a.dtype == torch.complex128
        u = theta.sin() * phi.cos()                  # direction cosine along x
        assert torch.allclose(a[3], torch.exp(1j * torch.pi * u))   # element (1, 0), dx = 0.5
    """
    nx, ny = _size(nx, "nx"), _size(ny, "ny")
    if not isinstance(spacing, (tuple, list)) or len(spacing) != 2:
        raise InputError(f"spacing: expected a pair (dx, dy) in wavelengths, got {spacing!r}")
    dx, dy = _spacing(spacing[0], "spacing[0]"), _spacing(spacing[1], "spacing[1]")
    theta, phi = _angles(theta, "theta"), _angles(phi, "phi")
    if theta.dtype != phi.dtype:
        raise InputError(f"theta, phi: dtypes differ ({theta.dtype}, {phi.dtype}); convert them to one dtype")
    try:
        theta, phi = torch.broadcast_tensors(theta, phi)
    except RuntimeError:
        raise InputError(
            f"theta, phi: shapes {tuple(theta.shape)} and {tuple(phi.shape)} do not broadcast"
        ) from None
    u = torch.sin(theta) * torch.cos(phi)
    v = torch.sin(theta) * torch.sin(phi)
    ix = torch.arange(nx, dtype=theta.dtype, device=theta.device).repeat_interleave(ny)
    iy = torch.arange(ny, dtype=theta.dtype, device=theta.device).repeat(nx)
    phase = 2 * math.pi * (dx * ix[:, None] * u[..., None, :] + dy * iy[:, None] * v[..., None, :])
    return torch.complex(torch.cos(phase), torch.sin(phase))
