"""The wheel's package list is written out in pyproject.toml (evals/ and prompts/ install under the
autointerp namespace), so a new package folder must be added there by hand: this catches a miss."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    config = _setuptools()
    folders = {v: k for k, v in config["package-dir"].items()}  # folder -> installed name
    on_disk = set()
    for top in ("autointerp", "sae", *folders):
        for init in (ROOT / top).rglob("__init__.py"):
            folder = init.parent.relative_to(ROOT).as_posix()
            head, _, rest = folder.partition("/")
            name = folders.get(head, head) + ("." + rest.replace("/", ".") if rest else "")
            on_disk.add(name)
    assert set(config["packages"]) == on_disk


def test_every_data_file_in_a_package_is_listed_for_the_wheel() -> None:
    """Templates, static files, prompts and the built-in model reach an install only through package-data."""
    config = _setuptools()
    listed = set()
    for package, globs in config["package-data"].items():
        folder = ROOT / config["package-dir"].get(package, package.replace(".", "/"))
        listed.update(p.relative_to(ROOT).as_posix() for g in globs for p in folder.glob(g))
    tops = {"autointerp", "sae", *config["package-dir"].values()}
    tracked = subprocess.run(["git", "ls-files", *tops], cwd=ROOT, capture_output=True, text=True, check=True)
    data = {f for f in tracked.stdout.split() if not f.endswith(".py")}
    assert "autointerp/export/static/catalog-unit.js" in data
    assert data <= listed, sorted(data - listed)


def test_no_generic_top_level_import_names() -> None:
    tops = {name.split(".")[0] for name in _setuptools()["packages"]}
    assert tops == {"autointerp", "sae"}


def test_the_llm_layer_imports_no_catalog_module() -> None:
    """LLM clients reach storage only through autointerp.llm.ledger.LLMLedger."""
    imported = set()
    for path in (ROOT / "autointerp" / "llm").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert "autointerp.llm.ledger" in imported
    assert not {m for m in imported if m.startswith(("autointerp.store", "autointerp.labeling", "autointerp.pipeline"))}


def test_the_store_loads_without_the_provider_sdks() -> None:
    """Reading a catalog (export, compare) should not pay the seconds the openai/anthropic imports take."""
    code = "import sys, autointerp.store; print(sorted({'openai', 'anthropic'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ci_runs_the_readme_test_command() -> None:
    """The README's "Run the tests" command is a line of .ci/run, so what CI checks is what it says."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Run the tests:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    (command,) = block.strip().splitlines()
    assert "--durations=15" in command
    assert command in (ROOT / ".ci/run").read_text().splitlines()
