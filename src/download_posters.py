"""Download posters from a link file (movie_id<TAB>URL) into a folder extract_images.py reads (docs/media.md)."""

import sys

from m3l.download.posters import main

if __name__ == "__main__":
    sys.exit(main())
