"""The JSON vector codec and the ids' table keys.

`<folder>/<id>.json` holds `{id: [dim numbers]}`, finite as float32: `parse_vector` reads one.
Parsing uses orjson and checks a whole vector with numpy; the standard library parser only
looks again at files orjson refuses, to tell NaN or Inf literals from broken JSON.

Every table stores ids as keys: int64 when every id's decimal form round-trips, else the
strings (`table_keys`), sorted by `id_order`; readers give them back as `canonical_id`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import orjson

NOT_JSON = "files that do not parse"
NOT_OWN_ID = "files that are not {id: [...]} for their own id"
NOT_NUMBERS = "files with values that are not numbers"
NOT_FINITE = "NaN or Inf values"
BEYOND_FLOAT32 = "values beyond float32 range"
_NUMBER_TYPES = {int, float}
_INT64_MAX = 2**63 - 1


def wrong_length(dim: int) -> str:
    return f"wrong length (not {dim})"


def parse_vector(raw: bytes, movie_id: str, dim: int) -> np.ndarray | str:
    """The float32 vector of a per-movie JSON file, or the problem that keeps it from being one:
    a file is sound only when it is exactly `{movie_id: [dim numbers]}`, finite as float32."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # NaN, Infinity and numbers beyond float64 are no JSON to orjson
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return NOT_JSON
    if not isinstance(data, dict) or len(data) != 1 or not isinstance(data.get(movie_id), list):
        return NOT_OWN_ID
    values = data[movie_id]
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return NOT_NUMBERS
    if len(values) != dim:
        return wrong_length(dim)
    try:
        wide = np.array(values, dtype=np.float64)
    except OverflowError:
        return BEYOND_FLOAT32
    if not np.isfinite(wide).all():
        return NOT_FINITE
    with np.errstate(over="ignore"):
        vector = wide.astype(np.float32)
    return vector if np.isfinite(vector).all() else BEYOND_FLOAT32


def integer_ids(ids: Iterable[str]) -> bool:
    """Whether the tables store these ids as int64: each one's decimal form round-trips exactly."""
    found = False
    for movie_id in ids:
        if not (movie_id.isascii() and movie_id.isdigit() and str(int(movie_id)) == movie_id
                and int(movie_id) <= _INT64_MAX):
            return False
        found = True
    return found


def table_keys(ids: list[str]) -> np.ndarray | list[str]:
    """The ids as the tables store them: int64 when every id's decimal form round-trips, else the strings."""
    return np.array(ids, dtype=np.int64) if integer_ids(ids) else list(ids)


def key_order(keys: np.ndarray | list[str]) -> np.ndarray:
    """The permutation sorting table keys like the tables: numerically, else by string."""
    if isinstance(keys, np.ndarray):
        return np.argsort(keys, kind="stable")
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def id_order(ids: list[str]) -> tuple[bool, np.ndarray]:
    """Whether the ids are stored as integers, and the permutation sorting them like the tables."""
    keys = table_keys(ids)
    return isinstance(keys, np.ndarray), key_order(keys)


def canonical_id(movie_id: object) -> str:
    """An id as every reader returns it: its string form, exactly as its file is named (an int64
    table id is one whose decimal form round-trips)."""
    return str(movie_id)
