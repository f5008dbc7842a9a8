"""Fixtures shared by the data tests."""

from __future__ import annotations

import pytest

from s4op_kernels import data


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated Pathfinder dataset in the LRA layout (easy difficulty: folder curv_baseline)."""
    root = tmp_path_factory.mktemp("pf")
    return data.generate("pathfinder", root, train=12, val=4, test=4, seed=0, difficulty="easy",
                         images_per_batch=8)
