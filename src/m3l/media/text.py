"""Plots need no decoding: the catalogue already holds the text."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from m3l.catalog import Item


def plot_text(item: Item) -> str:
    return item.source


def loader_for(encoders: list, args: argparse.Namespace) -> Callable[[Item], str]:
    return plot_text
