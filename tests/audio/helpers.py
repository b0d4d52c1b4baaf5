"""Small helpers for the audio tests: output folders and log lines."""

from __future__ import annotations

from pathlib import Path

FOLDERS = {"whisper": "audio_whisper", "ast": "audio_ast", "vggish": "audio_vggish"}


def log_lines(output: Path, model: str) -> list[str]:
    """The log lines of one model without their timestamp: '<folder> <id> <status> <reason>'."""
    text = (output / f"log_{FOLDERS[model]}.txt").read_text(encoding="utf-8")
    return [line.split(" ", 1)[1] for line in text.splitlines()]
