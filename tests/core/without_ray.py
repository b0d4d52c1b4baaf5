"""m3l.cli.main("text", ARGS) in a process where Ray cannot be imported, as if it were not installed;
fails if importing the CLI imported any part of Ray.

    python -m tests.core.without_ray ARGS...
"""

import sys

sys.modules["ray"] = None

from m3l.cli import main  # noqa: E402 - after Ray is made unimportable

if __name__ == "__main__":
    assert not [name for name in sys.modules if name.startswith("ray.")]
    sys.exit(main("text", sys.argv[1:]))
