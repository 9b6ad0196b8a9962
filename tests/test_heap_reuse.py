"""Large working arrays are reused from the heap while a feature family runs, and handed back after."""
from __future__ import annotations

import resource

import numpy as np
import pytest

from features.transactions import _glibc, _heap_reused

SIZE = 96 * 2**20 // 8  # float64 values: over glibc's 32 MiB mmap ceiling (48 huge pages)


def _faults_of_second_array() -> int:
    """Minor page faults of filling an array after one of the same size was filled and freed."""
    first = np.ones(SIZE)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = np.ones(SIZE)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_a_freed_large_array_is_reused_inside_and_returned_after():
    outside = _faults_of_second_array()  # unmapped on free: every page is new again
    with _heap_reused():
        inside = _faults_of_second_array()
    after = _faults_of_second_array()  # glibc's own behaviour is back
    assert outside > 20 and after > 20
    assert inside * 4 < outside


def test_disabled_changes_nothing():
    with _heap_reused(enabled=False):
        assert _faults_of_second_array() > 20
