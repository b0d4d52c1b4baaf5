"""pyproject.toml declares what the code needs: `pip install .[<modality>]` gives a working m3l."""

import tomllib

from packaging.requirements import Requirement

from tests.testlib import REPO, SRC, normalized, requirements_in, run_recording_imports

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
MODALITIES = ("text", "image", "audio", "video")


def declared(*extras: str) -> set[str]:
    """The distribution names of the base dependencies and of the given extras."""
    lines = PROJECT["dependencies"] + [line for extra in extras for line in PROJECT["optional-dependencies"][extra]]
    return {normalized(Requirement(line).name) for line in lines}


def test_import_m3l_needs_only_the_base_dependencies(tmp_path):
    script = tmp_path / "import_m3l.py"
    script.write_text("import m3l\n")
    result, loaded = run_recording_imports(script, record=tmp_path / "imports.json", env={"PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr
    assert "orjson" in loaded and loaded <= declared(), loaded - declared()


def test_each_extra_declares_what_its_requirements_file_pins():
    for modality in MODALITIES:
        pins = {normalized(requirement.name) for requirement in requirements_in(REPO / f"{modality}_reqs.txt")}
        missing = pins - declared(modality, "ray", "report")
        assert not missing, f"{modality}: {missing}"
