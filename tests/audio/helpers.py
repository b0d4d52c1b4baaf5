"""Small helpers for the audio tests: output folders, trailer maps and log lines."""

from __future__ import annotations

from pathlib import Path

FOLDERS = {"whisper": "audio_whisper", "ast": "audio_ast", "vggish": "audio_vggish"}


def write_map(path: Path, rows: list[tuple[str, object]], header: bool = True) -> Path:
    lines = (["movie_id\ttrailer_path"] if header else []) + [f"{movie_id}\t{source}" for movie_id, source in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def log_lines(output: Path, model: str) -> list[str]:
    """The log lines of one model without their timestamp: '<folder> <id> <status> <reason>'."""
    text = (output / f"log_{FOLDERS[model]}.txt").read_text(encoding="utf-8")
    return [line.split(" ", 1)[1] for line in text.splitlines()]
