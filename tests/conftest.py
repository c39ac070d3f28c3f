"""Fixtures shared by every test folder.

This folder is also on ``sys.path`` (pytest's default "prepend" import mode adds the folder of a
``conftest.py``), so test modules import the shared helpers with ``from _helpers import ...``.
"""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread: small and medium matrices on a shared 2-core
    machine, where extra threads only contend. Use with ``pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
