import atexit
import contextlib
import logging
import os
import shutil
import signal
import tempfile

import pytest

from tests.testlib import REPO, SRC

# Tests never reach a model hub: every model comes from a temporary store.
os.environ.setdefault("M3L_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The hashes of model files known from earlier runs: the suite's own, never the user's cache.
if "M3L_CACHE_DIR" not in os.environ:
    os.environ["M3L_CACHE_DIR"] = tempfile.mkdtemp(prefix="m3l-test-cache-")
    atexit.register(shutil.rmtree, os.environ["M3L_CACHE_DIR"], ignore_errors=True)

# Ray and Ray Data bind their log handlers to the sys.stderr of their first import: imported inside a test
# that captures stderr (capsys), their later lines go to that closed stream, and logging prints a traceback
# into whichever test runs Ray next. Imported here, they keep the session's stream. The download venv has no Ray.
with contextlib.suppress(ImportError):
    import ray.data  # noqa: F401

# A suite started in the background of a non-interactive shell (`make test &`) inherits SIGINT
# ignored, and so would every script it starts: the Ctrl-C tests need it as a terminal gives it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    try:
        import torch
    except ImportError:  # the download venv has no torch
        return
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ray_cluster() -> str:
    """One Ray instance per test session (starting one takes many seconds on 2 cores): its GCS address.

    The workers import m3l and the test-only encoders from the checkout, as the scripts' workers do.
    """
    import ray

    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(SRC), str(REPO)])}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
