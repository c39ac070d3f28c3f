"""Finite-difference stencils: exact weights against known tables, moments, order, bad input."""

from fractions import Fraction as F
from math import factorial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from difflinalg import InputError
from difflinalg.check import backward_fdm, central_fdm, forward_fdm, stencil


def test_central_5_point_first_derivative():
    s = central_fdm(5, 1)
    assert s.offsets == (-2, -1, 0, 1, 2)
    assert s.coefs == (F(1, 12), F(-2, 3), F(0), F(2, 3), F(-1, 12))
    assert all(isinstance(c, F) for c in s.coefs)
    assert s.float_coefs() == (1 / 12, -2 / 3, 0.0, 2 / 3, -1 / 12)
    assert (s.p, s.q, s.order) == (5, 1, 4)


@pytest.mark.parametrize(
    "make, p, q, offsets, coefs",
    [
        # Fornberg (1988), Table 1 / the standard tables of central and one-sided differences.
        (central_fdm, 3, 1, (-1, 0, 1), (F(-1, 2), 0, F(1, 2))),
        (central_fdm, 7, 1, (-3, -2, -1, 0, 1, 2, 3), (F(-1, 60), F(3, 20), F(-3, 4), 0, F(3, 4), F(-3, 20), F(1, 60))),
        (central_fdm, 3, 2, (-1, 0, 1), (1, -2, 1)),
        (central_fdm, 5, 2, (-2, -1, 0, 1, 2), (F(-1, 12), F(4, 3), F(-5, 2), F(4, 3), F(-1, 12))),
        (central_fdm, 5, 3, (-2, -1, 0, 1, 2), (F(-1, 2), 1, 0, -1, F(1, 2))),
        (central_fdm, 5, 4, (-2, -1, 0, 1, 2), (1, -4, 6, -4, 1)),
        (central_fdm, 4, 1, (-2, -1, 1, 2), (F(1, 12), F(-2, 3), F(2, 3), F(-1, 12))),
        (central_fdm, 2, 1, (-1, 1), (F(-1, 2), F(1, 2))),
        (forward_fdm, 2, 1, (0, 1), (-1, 1)),
        (forward_fdm, 3, 1, (0, 1, 2), (F(-3, 2), 2, F(-1, 2))),
        (forward_fdm, 5, 1, (0, 1, 2, 3, 4), (F(-25, 12), 4, -3, F(4, 3), F(-1, 4))),
        (forward_fdm, 4, 2, (0, 1, 2, 3), (2, -5, 4, -1)),
        (backward_fdm, 3, 1, (-2, -1, 0), (F(1, 2), -2, F(3, 2))),
        (backward_fdm, 4, 2, (-3, -2, -1, 0), (-1, 4, -5, 2)),
    ],
)
def test_known_tables(make, p, q, offsets, coefs):
    s = make(p, q)
    assert s.offsets == offsets
    assert s.coefs == tuple(F(c) for c in coefs)


@pytest.mark.parametrize(
    "s, order, trunc",
    [
        (central_fdm(3, 1), 2, F(1, 6)),      # f'  + h^2 f'''/6
        (central_fdm(5, 1), 4, F(1, 30)),     # f'  - h^4 f^(5)/30
        (central_fdm(3, 2), 2, F(1, 12)),     # f'' + h^2 f''''/12
        (central_fdm(4, 1), 4, F(1, 30)),     # even p skips 0: the 5-point stencil
        (forward_fdm(2, 1), 1, F(1, 2)),      # f'  + h f''/2
        (forward_fdm(3, 1), 2, F(1, 3)),
        (backward_fdm(3, 1), 2, F(1, 3)),
    ],
)
def test_order_and_truncation_coefficient(s, order, trunc):
    assert s.order == order
    assert s.truncation_coef == trunc
    assert s.roundoff_coef == pytest.approx(float(sum(abs(c) for c in s.coefs)))


@settings(max_examples=40, deadline=None)
@given(p=st.integers(2, 9), data=st.data())
def test_taylor_moments(p, data):
    """sum_i c_i o_i^k = q! [k == q] for k < p, for every kind (the defining Vandermonde system)."""
    q = data.draw(st.integers(1, p - 1))
    for s in (central_fdm(p, q), forward_fdm(p, q), backward_fdm(p, q)):
        for k in range(p):
            moment = sum(c * F(o) ** k for c, o in zip(s.coefs, s.offsets))
            assert moment == (factorial(q) if k == q else 0)
        assert s.order >= p - q


@pytest.mark.parametrize("p, q", [(3, 1), (4, 2), (5, 3)])
def test_backward_mirrors_forward(p, q):
    fw, bw = forward_fdm(p, q), backward_fdm(p, q)
    assert bw.offsets == tuple(-o for o in reversed(fw.offsets))
    assert bw.coefs == tuple((-1) ** q * c for c in reversed(fw.coefs))


def test_arbitrary_offsets():
    s = stencil([-1, 0, 2], q=1)
    assert sum(c * o for c, o in zip(s.coefs, s.offsets)) == 1
    assert sum(s.coefs) == 0


@pytest.mark.parametrize("p, q", [(1, 1), (2, 2), (3, 5)])
def test_p_not_above_q_is_an_error(p, q):
    for make in (central_fdm, forward_fdm, backward_fdm):
        with pytest.raises(InputError, match=r"p: .*p > q"):
            make(p, q)


def test_bad_arguments():
    with pytest.raises(InputError, match="q: "):
        central_fdm(5, 0)
    with pytest.raises(InputError, match="p and q must be integers"):
        central_fdm(5.0, 1)
    with pytest.raises(InputError, match="offsets: must be distinct"):
        stencil([0, 1, 1], 1)
    with pytest.raises(InputError, match="more than q points"):
        stencil([0, 1], 2)


@pytest.mark.parametrize("offsets", [[0, 0.5, 1], [-1, 0, 1.0], [True, 0, 2], [0, "1", 2]],
                         ids=["half", "float-integral", "bool", "str"])
def test_non_integer_offsets_raise_naming_offsets(offsets):
    """Before: ``int()`` truncated 0.5 to 0 (a wrong stencil, or a misleading "must be distinct")."""
    with pytest.raises(InputError, match=r"offsets: expected integer offsets .* got "):
        stencil(offsets)


def test_integer_like_offsets_are_accepted():
    st = stencil([np.int64(-1), 0, torch.tensor(1)])
    assert st.offsets == (-1, 0, 1) and all(type(o) is int for o in st.offsets)
    assert st == stencil([-1, 0, 1])
