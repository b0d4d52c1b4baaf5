"""Fill the model store with the three audio models (the original's pre-step)."""

import sys

from download_models import main

if __name__ == "__main__":
    sys.exit(main(modalities=("audio",)))
