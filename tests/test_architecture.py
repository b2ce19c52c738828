"""The import contracts hold, and each one really fails when a forbidden import is planted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
MEMBERS = ("leyline", "kasmina", "tamiyo", "simic", "esper")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(tree / "packages" / m / "src") for m in MEMBERS)
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _copy_tree(destination: Path) -> Path:
    shutil.copy(ROOT / ".importlinter", destination / ".importlinter")
    for member in MEMBERS:
        shutil.copytree(
            ROOT / "packages" / member / "src",
            destination / "packages" / member / "src",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return destination


@pytest.mark.static
def test_contracts_are_kept_on_the_real_tree() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.static
@pytest.mark.parametrize(
    ("importer", "statement", "contract"),
    [
        ("kasmina", "import esper.simic", "Layers: app above simic above kasmina above leyline"),
        ("leyline", "import esper.kasmina", "Layers: app above simic above kasmina above leyline"),
        ("tamiyo", "import esper.app", "Layers: app above tamiyo above leyline"),
        ("simic", "import esper.tamiyo", "Simic never imports tamiyo"),
        ("kasmina", "import esper.tamiyo", "Kasmina and tamiyo are independent of each other"),
        ("tamiyo", "import esper.kasmina", "Kasmina and tamiyo are independent of each other"),
        ("leyline", "import torch", "Leyline imports no other member and no torch"),
        ("leyline", "import esper.tamiyo", "Leyline imports no other member and no torch"),
        ("simic", "import ray", "Only simic's Ray pool imports Ray"),
        ("simic", "from esper.simic.envs import ray_pool", "Only simic's Ray pool imports Ray"),
        ("simic.envs", "import ray", "Only simic's Ray pool imports Ray"),
        ("simic.envs", "from esper.simic.envs import ray_pool", "Only simic's Ray pool imports Ray"),
        ("simic.ppo", "from esper.simic.envs.ray_pool import RayPool", "Only simic's Ray pool imports Ray"),
        ("esper", "import ray.util", "Only simic's Ray pool imports Ray"),
        ("esper", "from esper.simic.envs.ray_pool import RayPool", "Only simic's Ray pool imports Ray"),
        ("tamiyo.policy", "import esper.tamiyo.rules.heuristic", "Tamiyo: the learned policy and the rules"),
        ("tamiyo.rules", "from esper.tamiyo.policy import network", "Tamiyo: the learned policy and the rules"),
        ("tamiyo.encoding", "import esper.tamiyo.policy.lstm_bundle", "Tamiyo: the learned policy and the rules"),
        ("simic.envs", "import esper.simic.ppo.updater", "Simic: the loops above envs and ppo"),
        ("simic.ppo", "from esper.simic.envs import pools", "Simic: the loops above envs and ppo"),
        ("simic.envs", "import esper.simic.episode_loop", "Simic: the loops above envs and ppo"),
    ],
)
def test_each_contract_catches_a_planted_violation(
    tmp_path: Path, importer: str, statement: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    member, *subpackage = importer.split(".")  # "simic.envs": planted in esper/simic/envs/
    package = "app" if member == "esper" else member
    planted = tree / "packages" / member / "src" / "esper" / package / Path(*subpackage) / "planted_violation.py"
    planted.write_text(f'"""A forbidden import planted by the architecture test."""\n{statement}\n')
    result = _lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken_section, result.stdout
    assert "planted_violation" in result.stdout


@pytest.mark.static
@pytest.mark.parametrize(
    ("module", "statement"),
    [
        ("demonstrations", "import esper.simic.warm_start"),
        ("training", "import esper.simic.demonstrations"),
    ],
)
def test_the_warm_start_modules_keep_their_layers(tmp_path: Path, module: str, statement: str) -> None:
    """A warm start stands on training: an import back up from one of its modules breaks the simic contract
    (planted into the module itself, since a new module importing them would only reach training's layer)."""
    tree = _copy_tree(tmp_path)
    source = tree / "packages" / "simic" / "src" / "esper" / "simic" / f"{module}.py"
    source.write_text(source.read_text() + f"\n{statement}  # planted by the architecture test\n")
    result = _lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert "Simic: the loops above envs and ppo" in result.stdout.split("Broken contracts", 1)[-1], result.stdout


@pytest.mark.subprocess
def test_importing_leyline_loads_no_torch() -> None:
    code = "import sys, esper.leyline; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_no_member_ships_an_esper_init() -> None:
    """`esper` is a namespace shared by the members: an __init__.py in any of them would shadow the others."""
    for member in MEMBERS:
        assert not (ROOT / "packages" / member / "src" / "esper" / "__init__.py").exists(), member
