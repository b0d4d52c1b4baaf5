"""Download trailers from a link file (M3L's REPRO_trailer_links.tsv format) with yt-dlp, into <id>.mp4
files and the trailers.tsv catalogue the audio and video extractors read (see docs/media.md).

Runs in its own venv: make setup-download; .venvs/download/bin/python src/download_trailers.py --links ...
"""

import sys

from m3l.download.trailers import main

if __name__ == "__main__":
    sys.exit(main())
