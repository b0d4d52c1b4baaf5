"""Plots need no decoding: the catalogue already holds the text."""

from __future__ import annotations

from collections.abc import Callable

from m3l.catalog import Item
from m3l.media import LoaderOptions


def plot_text(item: Item) -> str:
    return item.source


def loader_for(encoders: list, options: LoaderOptions = LoaderOptions()) -> Callable[[Item], str]:
    return plot_text
