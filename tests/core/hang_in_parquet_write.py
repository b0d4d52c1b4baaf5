"""An extract_text run whose Parquet write stops half-way: it writes the first row of the table,
touches the file READY, then hangs until killed.

    python -m tests.core.hang_in_parquet_write READY EXTRACT_TEXT_ARGS...
"""

import sys
import time

import pyarrow.parquet as pq

from m3l.cli import main

write = pq.ParquetWriter.write_batch


def half_then_hang(writer, batch, **options) -> None:
    write(writer, batch.slice(0, 1), **options)
    open(sys.argv[1], "w").close()
    time.sleep(600)


if __name__ == "__main__":
    pq.ParquetWriter.write_batch = half_then_hang
    main("text", sys.argv[2:])
