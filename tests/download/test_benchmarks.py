"""The download venv's benchmarks run through with their smallest arguments."""

import pytest

from tests.testlib import quick_benchmarks, run_quick_benchmark


@pytest.mark.parametrize("script", quick_benchmarks("download"))
def test_benchmark_runs(script):
    run_quick_benchmark(script)
