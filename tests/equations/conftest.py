"""Fixtures of the matrix-equation tests (helpers live in ``_eqhelpers.py``)."""

import pytest
import torch


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
