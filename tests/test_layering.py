"""The import-linter contracts of pyproject.toml are live: a forbidden import breaks `make lint`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    shutil.copytree(ROOT / "vfleet", tmp_path / "vfleet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_as_it_is_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("vfleet/cli/act.py", "import textual", "the headless CLI never imports textual"),
        ("vfleet/drivers/sim.py", "import vfleet.core.operations", "drivers never import the core's services"),
        ("vfleet/core/policy.py", "import vfleet.screens.fleet", "the core never imports a face"),
        ("vfleet/widgets/panes.py", "import vfleet.drivers.registry", "screens and widgets never import drivers"),
        ("vfleet/core/models.py", "import vfleet.core.engine", "core values (models, errors) import nothing else"),
        ("vfleet/drivers/registry.py", "import vfleet.testing.driver_contract", "the runtime never imports the test kit"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree: Path, module: str, forbidden: str, contract: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{forbidden}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout
