"""Shared helpers of ``difflinalg._utils`` that carry behaviour of their own: the BLAS thread limits."""

import pytest

from difflinalg import _utils

threadpoolctl = pytest.importorskip("threadpoolctl")


def test_blas_threads_limits_and_restores():
    """Inside the block every BLAS library found runs ``n`` threads; afterwards its own count."""
    controller = _utils.blas_controller()
    before = {lib["filepath"]: lib["num_threads"] for lib in controller.info()}
    assert before, "NumPy's BLAS should be found"
    with _utils.blas_threads(1):
        assert all(lib["num_threads"] == 1 for lib in controller.info())
    assert {lib["filepath"]: lib["num_threads"] for lib in controller.info()} == before


def test_blas_controller_scans_once(monkeypatch):
    """The library scan (a ctypes callback per loaded library, where a Ctrl-C is dropped) runs once
    per process: later limits reuse the controller and scan nothing."""
    first = _utils.blas_controller()

    def no_scan(*args, **kwargs):
        raise AssertionError("scanned the loaded libraries again")

    monkeypatch.setattr(threadpoolctl.ThreadpoolController, "__init__", no_scan)
    assert _utils.blas_controller() is first
    with _utils.blas_threads(1):
        pass
