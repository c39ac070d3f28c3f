"""Fixtures of the signal tests."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every signal test module runs on one torch thread (``one_thread``, tests/conftest.py)."""
