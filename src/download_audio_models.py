"""Fill the model store with the audio models: download_models.py --modality audio."""

import sys

from download_models import main

if __name__ == "__main__":
    sys.exit(main(modalities=("audio",)))
