"""An extract_text run whose Parquet write stops half-way: it writes the first row of the table,
touches the file READY, then hangs until killed.

    python -m tests.core.hang_in_parquet_write READY EXTRACT_TEXT_ARGS...
"""

import sys
import time

import pyarrow.parquet as pq

from m3l.cli import main

write = pq.write_table


def half_then_hang(table, where, **options) -> None:
    write(table.slice(0, 1), where, **options)
    open(sys.argv[1], "w").close()
    time.sleep(600)


if __name__ == "__main__":
    pq.write_table = half_then_hang
    main("text", sys.argv[2:])
