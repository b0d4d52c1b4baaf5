"""Every benchmark in bench/ runs: the text-venv ones here, the others in their modality's folder."""

import pytest

from tests.testlib import BENCH, OPTIONS_ONLY_BENCHMARKS, QUICK_BENCHMARKS, quick_benchmarks, run_quick_benchmark, \
    run_offline


def test_every_benchmark_is_run_by_a_test():
    scripts = {path.name for path in BENCH.glob("*.py") if "__main__" in path.read_text()}
    assert scripts == {*QUICK_BENCHMARKS, *OPTIONS_ONLY_BENCHMARKS}


@pytest.mark.parametrize("script", quick_benchmarks("text"))
def test_benchmark_runs(script):
    run_quick_benchmark(script)


@pytest.mark.parametrize("script", OPTIONS_ONLY_BENCHMARKS)
def test_benchmark_imports_and_parses_its_options(script):
    result = run_offline(BENCH / script, ["--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
