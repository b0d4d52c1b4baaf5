"""Unusable posters and odd folder contents: each logged with its reason, the others still encoded."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.image.helpers import extract, log_lines, tsv_map
from tests.image.media import bad_posters, photo, write_photos
from tests.image.reference import Reference, poster_rgb
from tests.outputs import read_vector

MODEL = "clip-image"  # decoding is shared by all three models; the tiny CLIP keeps this quick


@pytest.fixture(scope="module")
def reference(image_store) -> Reference:
    return Reference(image_store)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A poster folder: good photos in every accepted extension, bad files, duplicates, bad names,
    and entries that are no posters (a text file, a folder, a FIFO, a dangling link)."""
    folder = tmp_path_factory.mktemp("posters")
    write_photos(folder)
    image = photo("coffee.png")
    for name in ("upper.JPG", "long.jpeg", "bitmap.bmp", "still.webp", "dup.jpg"):
        image.save(folder / name)
    image.rotate(180).save(folder / "dup.png")
    image.save(folder / "anim.gif", save_all=True, append_images=[image.rotate(90), image.rotate(180)])
    for name in ("my poster.jpg", "a.b.png", "CON.jpg", "notes.txt"):
        image.save(folder / name, format="PNG")
    (folder / "folder.jpg").mkdir()
    os.mkfifo(folder / "fifo.png")
    os.symlink(folder / "nowhere.png", folder / "gone.png")
    bad = bad_posters(folder)
    return folder, bad


@pytest.fixture(scope="module")
def output(image_store, folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("out")
    assert extract(image_store, folder[0], output, "--models", MODEL, "--batch-size", 3, "--workers", 2) == 0
    return output


def test_good_posters_in_every_extension_are_encoded(output, folder, reference):
    for movie_id in ("astronaut", "chelsea", "rocket", "upper", "long", "bitmap", "still", "dup", "anim"):
        source = min(folder[0].glob(f"{movie_id}.*"))  # of two files, the first by name
        np.testing.assert_allclose(read_vector(output / MODEL, movie_id), reference.vector(MODEL, poster_rgb(source)),
                                   rtol=0, atol=1e-5, err_msg=movie_id)
        if movie_id not in ("dup", "anim"):
            assert log_lines(output, MODEL, movie_id) == []
    assert log_lines(output, MODEL, "anim") == ["warning animated image (3 frames): the first frame is used",
                                                "warning palette image (mode P) converted to RGB"]


def test_each_unusable_file_fails_with_its_reason_and_writes_nothing(output, folder):
    for movie_id, (_, reason) in folder[1].items():
        lines = log_lines(output, MODEL, movie_id)
        assert len(lines) == 1 and lines[0].startswith("failed ") and reason in lines[0], (movie_id, lines)
        assert not (output / MODEL / f"{movie_id}.json").exists()


def test_duplicate_ids_keep_the_first_file_by_name(output, folder, reference):
    kept = reference.vector(MODEL, poster_rgb(folder[0] / "dup.jpg"))
    np.testing.assert_allclose(read_vector(output / MODEL, "dup"), kept, rtol=0, atol=1e-5)
    assert log_lines(output, MODEL, "dup") == ["skipped duplicate id: dup.png ignored (another file of that id is used)"]


def test_invalid_names_are_skipped_and_entries_that_are_no_posters_are_logged(output):
    log = (output / f"log_{MODEL}.txt").read_text()
    assert "my\\x20poster skipped invalid id" in log
    assert "a.b skipped invalid id" in log
    assert "CON skipped invalid id (reserved file name)" in log
    not_used = {name: log_lines(output, MODEL, name) for name in ("notes.txt", "folder.jpg", "fifo.png", "gone.png")}
    assert not_used == {
        "notes.txt": ["warning folder entry not used: its extension .txt is not one of the formats read"],
        "folder.jpg": ["warning folder entry not used: a directory"],
        "fifo.png": ["warning folder entry not used: a FIFO (named pipe)"],
        "gone.png": ["warning folder entry not used: a symbolic link to nothing"]}
    written = sorted(path.stem for path in (output / MODEL).glob("*.json"))
    assert written == ["anim", "astronaut", "bitmap", "chelsea", "dup", "long", "rocket", "still", "upper"]


def test_max_pixels_and_missing_files_in_a_map(image_store, folder, tmp_path):
    small = tmp_path / "small.png"
    photo().resize((100, 60)).save(small)
    catalogue = tsv_map(tmp_path / "map.tsv", {"small": small, "big": folder[0] / "chelsea.png",
                                                "gone": tmp_path / "gone.jpg", "fifo": folder[0] / "fifo.png",
                                                "zero": "/dev/zero", "dir": folder[0], "proc": "/proc/self/status"})
    output = tmp_path / "out"
    assert extract(image_store, catalogue, output, "--models", MODEL, "--max-pixels", 10_000) == 0
    assert (output / MODEL / "small.json").exists()
    assert log_lines(output, MODEL, "big") == [
        "failed 451x300 = 135,300 pixels, over the decompression-bomb limit of 10,000 (--max-pixels raises it)"]
    assert log_lines(output, MODEL, "gone") == [f"failed file not found: {tmp_path / 'gone.jpg'}"]
    assert log_lines(output, MODEL, "fifo") == [f"failed file is a FIFO (named pipe), not a regular file: "
                                                f"{folder[0] / 'fifo.png'}"]
    assert log_lines(output, MODEL, "zero") == ["failed file is a character device, not a regular file: /dev/zero"]
    assert log_lines(output, MODEL, "dir") == [f"failed file is a directory, not a regular file: {folder[0]}"]
    assert log_lines(output, MODEL, "proc")[0].startswith("failed file is in the kernel's virtual file systems (/proc/")


def test_a_rerun_skips_what_is_done_and_retries_only_the_failures(image_store, folder, output, tmp_path):
    rerun = tmp_path / "rerun"
    shutil.copytree(output, rerun)
    before = {path.name: path.read_bytes() for path in (rerun / MODEL).glob("*.json")}
    assert extract(image_store, folder[0], rerun, "--models", MODEL) == 0
    assert {path.name: path.read_bytes() for path in (rerun / MODEL).glob("*.json")} == before
    for movie_id in folder[1]:
        assert len(log_lines(rerun, MODEL, movie_id)) == 2
