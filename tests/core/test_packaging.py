"""pyproject.toml declares what the code needs: `pip install .[<modality>]` gives a working m3l."""

import shutil
import subprocess
import sys
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
    script.write_text("import m3l\nm3l.load_features\n")  # the face loads its readers on first use
    result, loaded = run_recording_imports(script, record=tmp_path / "imports.json", env={"PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr
    assert "orjson" in loaded and loaded <= declared(), loaded - declared()


def test_each_extra_declares_what_its_requirements_file_pins():
    for modality in MODALITIES:
        pins = {normalized(requirement.name) for requirement in requirements_in(REPO / f"{modality}_reqs.txt")}
        missing = pins - declared(modality, "ray", "report")
        assert not missing, f"{modality}: {missing}"


def test_import_m3l_errors_loads_nothing_else():
    """The package face is lazy: a script's `from m3l.errors import ...` costs no feature store, numpy or orjson."""
    code = "import sys, m3l.errors; print(sorted(m for m in sys.modules if m.split('.')[0] in ('m3l', 'numpy', 'orjson')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={"PYTHONPATH": str(SRC)}, check=True)
    assert result.stdout.strip() == "['m3l', 'm3l.errors']"


def test_an_installed_m3l_takes_its_default_inputs_from_the_working_directory(tmp_path):
    """Not from beside the package: installed (not editable), that is site-packages, which holds no data/."""
    shutil.copytree(SRC / "m3l", tmp_path / "site-packages" / "m3l")
    code = "from m3l.modalities import MODALITIES; print(MODALITIES['text'].default_input.resolve())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={"PYTHONPATH": str(tmp_path / "site-packages")}, check=True)
    assert result.stdout.strip() == str(REPO / "data" / "plots.tsv")

