"""`pip install .` (not editable) ships the bundled data and notebooks; `mse run` then works from any folder."""

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import setuptools
from helpers import QUICK

from mse_helpers.runner.params import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_package_list_matches_the_package_folders():
    found = set(setuptools.find_packages(str(PROJECT_ROOT), include=["mse_helpers*"]))
    assert set(PYPROJECT["packages"]) == found | {"mse_helpers.data", "mse_helpers.notebooks"}
    assert PYPROJECT["package-dir"] == {"mse_helpers.data": "data", "mse_helpers.notebooks": "notebooks"}


def test_package_data_names_exactly_the_bundled_files():
    data = PYPROJECT["package-data"]
    # every bundled file is named, and every name is a file (no pattern that matches nothing)
    assert sorted(data["mse_helpers.notebooks"]) == sorted(p.name for p in (PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    bundled = sorted(p.name for p in (PROJECT_ROOT / "data").iterdir() if p.is_file())
    assert sorted(data["mse_helpers.data"]) == bundled
    assert set(data) == {"mse_helpers.data", "mse_helpers.notebooks"}


@pytest.mark.slow
def test_wheel_install_runs_from_any_folder(tmp_path):
    """Build a wheel offline, install it into a fresh venv and run `mse run` from an empty folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_PATH")}
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(PROJECT_ROOT),
        ],
        check=True,
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = wheels.glob("mse_helpers-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Installed first: once this environment is on the path, pip would take its editable
    # mse-helpers for "already installed".
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, env=env)
    # The dependencies come from this environment (offline): a .pth file puts its site-packages on
    # the path, and nbconvert's templates (data files outside site-packages) are linked in.
    Path(site, "deps-from-test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    share = venv / "share" / "jupyter"
    share.mkdir(parents=True)
    (share / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import mse_helpers; print(mse_helpers.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(site), where  # the installed copy, not the checkout
    run = subprocess.run(
        [
            str(venv / "bin" / "mse"),
            "run",
            "--params",
            "synthetic",
            *QUICK,
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (folder,) = [d for d in (work / "reports").iterdir() if d.is_dir()]
    assert (folder / "results" / "estimates.csv").is_file()
    man = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert man["status"] == "ok" and set(man["inputs"]) == {"reports", "aggregates", "register_map", "truth"}
    assert man["inputs"]["truth"]["path"].startswith(site)  # the bundled synthetic truth, shipped in the wheel
    assert man["git"]["commit"] is None  # not a checkout
