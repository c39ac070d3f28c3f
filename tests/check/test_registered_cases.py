"""Every registered verification case (``difflinalg.check.cases()``, what ``difflinalg verify``
runs) through ``gradcheck`` in all its modes: one test per case and dtype, id ``op/case-dtype``.

Those that take more than ~2 s (one thread, measured on the 2-core development machine) are
marked slow; every op keeps at least one in the default run (``test_every_op_has_a_fast_case``).
A new case runs by default until it is measured and listed in ``SLOW``.
"""

import pytest

from difflinalg.check import cases, load_errors

from _helpers import gradcheck_case

pytestmark = pytest.mark.usefixtures("one_thread")

# "op/case-dtype" -> seconds, measured (one thread, shared 2-core AMD EPYC, load ~8); those over
# ~2 s run only with -m slow, except the cheapest of an op that has nothing faster
# (h2_error/continuous-float64 2.2 s, hankel_singular_values/generic-float64 3.3 s,
# h2_projection/continuous-float64 4.4 s). Default run: 308 of 367 checks, ~150 s on that machine;
# the whole list: ~430 s (``difflinalg verify``, one thread).
SLOW = {
    "solve_sylvester/generic-complex128": 2.4,
    "solve_sylvester/schur-complex128": 3.9,
    "solve_sylvester/schur_torch-complex128": 3.0,
    "solve_sylvester/eig-complex128": 2.6,
    "solve_sylvester/auto_schur-complex128": 2.2,
    "solve_sylvester/batched-complex128": 2.3,
    "solve_sylvester/near_singular-complex128": 2.4,
    "solve_sylvester/non_normal-complex128": 4.0,
    "solve_sylvester/defective-complex128": 2.7,
    "solve_stein/generic-complex128": 3.1,
    "solve_stein/schur-float64": 2.8,
    "solve_stein/schur-complex128": 6.1,
    "solve_stein/schur_torch-float64": 2.9,
    "solve_stein/schur_torch-complex128": 7.0,
    "solve_stein/eig-float64": 2.6,
    "solve_stein/eig-complex128": 5.0,
    "solve_stein/wide_schur-float64": 3.7,
    "solve_stein/wide_schur-complex128": 7.6,
    "solve_stein/batched-float64": 3.9,
    "solve_stein/batched-complex128": 8.4,
    "solve_stein/nilpotent_A-float64": 3.1,
    "solve_stein/nilpotent_A-complex128": 6.2,
    "solve_stein/near_singular-float64": 2.8,
    "solve_stein/near_singular-complex128": 6.1,
    "solve_continuous_lyapunov/generic-complex128": 3.2,
    "solve_continuous_lyapunov/schur-float64": 2.2,
    "solve_continuous_lyapunov/schur-complex128": 4.2,
    "solve_continuous_lyapunov/schur_torch-float64": 2.3,
    "solve_continuous_lyapunov/schur_torch-complex128": 4.9,
    "solve_continuous_lyapunov/batched-float64": 2.9,
    "solve_continuous_lyapunov/batched-complex128": 4.8,
    "solve_continuous_lyapunov/hermitian_gramian-complex128": 3.9,
    "solve_continuous_lyapunov/unstable_A-float64": 2.3,
    "solve_continuous_lyapunov/unstable_A-complex128": 4.5,
    "solve_discrete_lyapunov/generic-complex128": 2.8,
    "solve_discrete_lyapunov/schur-float64": 2.9,
    "solve_discrete_lyapunov/schur-complex128": 5.7,
    "solve_discrete_lyapunov/schur_torch-complex128": 3.4,
    "solve_discrete_lyapunov/batched-complex128": 5.1,
    "solve_discrete_lyapunov/near_unit_circle-complex128": 3.8,
    "SylvesterOperator/solve-complex128": 2.2,
    "root/ridge_dense-complex128": 4.9,
    "root/ridge_gmres-float64": 3.6,
    "root/ridge_gmres-complex128": 3.7,
    "root/ridge_cg-complex128": 3.5,
    "root/batched-float64": 2.4,
    "root/batched-complex128": 2.2,
    "root/ill_conditioned-complex128": 4.5,
    "root/non_holomorphic-complex128": 2.4,
    "fixed_point/contraction-complex128": 11.4,
    "fixed_point/contraction_gmres-complex128": 13.3,
    "argmin/regularized_least_squares-complex128": 2.8,
    "h2_error/continuous-complex128": 5.9,
    "h2_error/discrete-float64": 4.7,
    "h2_error/discrete-complex128": 12.0,
    "hankel_singular_values/generic-complex128": 11.0,
    "h2_projection/continuous-complex128": 11.6,
    "h2_projection/discrete-float64": 6.6,
    "h2_projection/discrete-complex128": 16.9,
}

CASES = cases()


def _key(case, dtype) -> str:
    return f"{case.op}/{case.name}-{str(dtype).replace('torch.', '')}"


PARAMS = [pytest.param(c, dt, id=_key(c, dt), marks=[pytest.mark.slow] if _key(c, dt) in SLOW else [])
          for c in CASES for dt in c.dtypes]


def test_every_case_module_imports():
    """A case module that fails to import would drop its cases from the list below silently."""
    assert load_errors() == {}


def test_every_op_has_a_fast_case():
    keys = {_key(c, dt): c.op for c in CASES for dt in c.dtypes}
    fast = {op for key, op in keys.items() if key not in SLOW}
    assert set(keys.values()) - fast == set()
    assert set(keys) >= set(SLOW), f"SLOW names cases that no longer exist: {set(SLOW) - set(keys)}"


@pytest.mark.parametrize("case, dtype", PARAMS)
def test_registered_case(case, dtype):
    rep = gradcheck_case(case, dtype)  # raises GradcheckError naming the input, mode and mismatch
    assert rep.passed and {r.mode for r in rep.records} == set(case.modes)
