"""From MovieLens links.csv to plots.tsv, poster_links.tsv and trailer_links.tsv through TMDB's API (docs/media.md).

The key comes from the environment: TMDB_READ_TOKEN or TMDB_API_KEY.
"""

import sys

from m3l.download.tmdb import main

if __name__ == "__main__":
    sys.exit(main())
