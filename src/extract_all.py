"""Every modality's extractor in its own venv from one config file, then verify.py and report.py
(see docs/config.md)."""

import sys

from m3l.extract_all import main

if __name__ == "__main__":
    sys.exit(main())
