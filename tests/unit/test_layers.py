"""The package's layers point one way: a module imports only from layers below its own.

Every module of faceedit is parsed (not imported) and every import in it counts: at the
top, inside functions, under ``if TYPE_CHECKING:`` and ``importlib.import_module("...")``
with a constant name. An import of a higher layer, or of another package of the same
layer (peers are independent), fails with the module, the line and the rule.

``faceedit/__init__.py`` (the package root) may be named by anyone (``from faceedit import
__version__``): every import of a submodule runs it anyway, and it imports nothing eagerly.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import faceedit

# One table, lowest first. A name is a top-level module or package of faceedit; a module
# may import its own package and anything of a lower layer, never a peer or a higher one.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors", ("errors",)),
    # registry is the download catalogue (data only); the downloader, which validates
    # each file by loading it, is checkpoints.download
    ("leaf", ("fileio", "shipped", "attributes", "registry", "units")),
    ("networks", ("nets",)),
    ("resolver", ("hub",)),
    # lineage fingerprints and reads what hub resolves; every trainer and dataset builder
    # above records with it
    ("lineage", ("lineage",)),
    ("formats", ("checkpoints",)),
    ("data", ("data",)),
    ("faces and losses", ("faces", "losses", "viz")),
    ("train and editing", ("train", "editing")),
    ("judges", ("eval",)),
    ("datasets from models", ("synth",)),
    # configs re-exports the configs of nets and train (and builds presets with checkpoints)
    ("public modules", ("app", "configs")),
    ("commands", ("cli",)),
    ("entry points", ("__main__", "__init__")),
)

# Known upward imports being removed elsewhere: (importer, imported) -> why it is still here.
# An entry that no longer occurs fails the test, so that it is deleted with its import.
PENDING: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class UpwardImport:
    """One import that runs against the layers."""

    module: str
    path: Path
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.imported}: {self.rule}"


def layer_ranks(layers: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, tuple[int, str]]:
    """``{top-level name: (rank, layer name)}``; a name in two layers is a mistake."""
    ranks: dict[str, tuple[int, str]] = {}
    for rank, (layer, names) in enumerate(layers):
        for name in names:
            assert name not in ranks, f"{name} is in two layers"
            ranks[name] = (rank, layer)
    return ranks


def module_name(path: Path, root: Path, package: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def _is_package_file(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str, list]]:
    """``(line, module, names)`` for every import in ``tree``, relative ones made absolute."""
    found: list[tuple[int, str, list]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, target, [a.name for a in node.names]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value, []))
    return found


def _unit(module: str, package: str) -> str:
    """The top-level name of ``module`` inside ``package`` (``__init__`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_upward_imports(
    root: Path,
    layers: tuple[tuple[str, tuple[str, ...]], ...],
    pending: dict[tuple[str, str], str] | None = None,
) -> tuple[list[UpwardImport], set[tuple[str, str]]]:
    """Walk the package at ``root``: the upward imports, and the pending entries seen.

    Args:
        root: the package directory (its name is the package name).
        layers: ``((layer name, (top-level names...)), ...)``, lowest first.
        pending: ``{(importer, imported): reason}`` tolerated for now.

    Returns:
        ``(violations, used)``: the imports that break the layers and are not pending, and
        the pending keys that did occur. A module whose top-level name is in no layer is a
        violation too (every module must be placed).
    """
    package = root.name
    ranks = layer_ranks(layers)
    pending = pending or {}
    violations: list[UpwardImport] = []
    used: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root, package)
        shown = path.relative_to(root.parent)  # faceedit/nets/oracle.py
        unit = _unit(module, package)
        if unit not in ranks:
            violations.append(
                UpwardImport(module, shown, 1, "", f"{unit} is in no layer: add it to LAYERS")
            )
            continue
        rank, layer = ranks[unit]
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for line, target, names in imported_names(tree, module, _is_package_file(path)):
            if target != package and not target.startswith(package + "."):
                continue
            if target == package:
                # ``from faceedit import x``: a submodule x is a real edge, a name of the
                # root (``__version__``) is not
                targets = [f"{package}.{n}" for n in names if (root / n).is_dir()]
                targets += [f"{package}.{n}" for n in names if (root / f"{n}.py").is_file()]
            else:
                targets = [target]
            for imported in targets:
                other = _unit(imported, package)
                if other == unit:
                    continue
                if other not in ranks:
                    rule = f"{other} is in no layer: add it to LAYERS"
                else:
                    other_rank, other_layer = ranks[other]
                    if other_rank < rank:
                        continue
                    if other_rank == rank:
                        rule = (
                            f"{unit} and {other} are peers in layer '{layer}' and must not "
                            "import each other"
                        )
                    else:
                        rule = (
                            f"{unit} (layer '{layer}') may not import {other} "
                            f"(layer '{other_layer}', higher)"
                        )
                key = (module, imported)
                if key in pending:
                    used.add(key)
                    continue
                violations.append(UpwardImport(module, shown, line, imported, rule))
    return violations, used


# --------------------------------------------------------------------------- the package


PACKAGE_ROOT = Path(faceedit.__file__).parent


def test_every_import_runs_down_the_layers() -> None:
    violations, _ = find_upward_imports(PACKAGE_ROOT, LAYERS, PENDING)
    assert not violations, "imports that run up the layers:\n" + "\n".join(map(str, violations))


def test_pending_upward_imports_still_exist() -> None:
    _, used = find_upward_imports(PACKAGE_ROOT, LAYERS, PENDING)
    stale = sorted(set(PENDING) - used)
    assert not stale, f"these pending imports are gone: delete them from PENDING: {stale}"


def test_nets_import_nothing_else_of_the_package() -> None:
    """The rule that matters most, stated on its own: ``nets`` stands alone."""
    root = PACKAGE_ROOT / "nets"
    outside = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, PACKAGE_ROOT, "faceedit")
        for line, target, _ in imported_names(
            ast.parse(path.read_text("utf-8")), module, _is_package_file(path)
        ):
            if target.startswith("faceedit") and not target.startswith("faceedit.nets"):
                outside.append(f"{path}:{line}: {module} imports {target}")
    assert not outside, "\n".join(outside)


def test_every_module_is_in_a_layer() -> None:
    ranks = layer_ranks(LAYERS)
    names = {p.stem for p in PACKAGE_ROOT.glob("*.py")} | {
        p.name for p in PACKAGE_ROOT.iterdir() if (p / "__init__.py").is_file()
    }
    assert names - set(ranks) == set()


# --------------------------------------------------------------------------- the walker


FAKE_LAYERS = (
    ("leaf", ("errors",)),
    ("low", ("low",)),
    ("middle", ("left", "right")),
    ("high", ("high",)),
    ("root", ("__init__",)),
)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")


@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    """A package whose imports all run down: errors < low < left, right < high."""
    root = tmp_path / "fakepkg"
    _write(
        root,
        {
            "__init__.py": "__version__ = '0'\n",
            "errors.py": "class Oops(Exception):\n    pass\n",
            "low/__init__.py": "from fakepkg.errors import Oops\n",
            "low/core.py": "from . import helpers\nfrom .helpers import x\n",
            "low/helpers.py": "x = 1\n",
            "left.py": "from fakepkg.low.core import x\nfrom fakepkg import __version__\n",
            "right.py": "import fakepkg.low\n",
            "high/__init__.py": "",
            "high/app.py": "from fakepkg import left, right\nfrom ..low import core\n",
        },
    )
    return root


def test_walker_passes_a_package_whose_imports_run_down(fake_package: Path) -> None:
    violations, used = find_upward_imports(fake_package, FAKE_LAYERS)
    assert violations == [] and used == set()


@pytest.mark.parametrize(
    ("file", "text", "line", "imported", "rule"),
    [
        # at the top of the module
        ("low/core.py", "import os\nfrom fakepkg.high.app import run\n", 2, "fakepkg.high.app",
         "low (layer 'low') may not import high (layer 'high', higher)"),
        # inside a function, where lazy imports hide
        ("low/helpers.py", "def f():\n    from fakepkg import left\n    return left\n", 2,
         "fakepkg.left", "low (layer 'low') may not import left (layer 'middle', higher)"),
        # under TYPE_CHECKING: a type-only import still ties the layers
        ("errors.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    import fakepkg.low.core\n", 3, "fakepkg.low.core",
         "errors (layer 'leaf') may not import low (layer 'low', higher)"),
        # a relative import
        ("low/core.py", "from ..high import app\n", 1, "fakepkg.high",
         "low (layer 'low') may not import high (layer 'high', higher)"),
        # peers of one layer
        ("left.py", "x = 0\nfrom fakepkg.right import y\n", 2, "fakepkg.right",
         "left and right are peers in layer 'middle' and must not import each other"),
        # importlib with a constant name
        ("right.py", "import importlib\nm = importlib.import_module('fakepkg.high.app')\n", 2,
         "fakepkg.high.app", "right (layer 'middle') may not import high (layer 'high', higher)"),
    ],
)  # fmt: skip
def test_walker_names_module_line_and_rule_of_an_upward_import(
    fake_package: Path, file: str, text: str, line: int, imported: str, rule: str
) -> None:
    (fake_package / file).write_text(text, "utf-8")
    violations, _ = find_upward_imports(fake_package, FAKE_LAYERS)
    module = module_name(fake_package / file, fake_package, "fakepkg")
    assert [(v.module, v.line, v.imported, v.rule) for v in violations] == [
        (module, line, imported, rule)
    ]
    message = str(violations[0])
    assert f"{file}:{line}:" in message and module in message and rule in message


def test_walker_tolerates_a_pending_import_and_reports_it_used(fake_package: Path) -> None:
    (fake_package / "low" / "helpers.py").write_text("from fakepkg.high import app\n", "utf-8")
    key = ("fakepkg.low.helpers", "fakepkg.high")
    violations, used = find_upward_imports(fake_package, FAKE_LAYERS, {key: "being moved"})
    assert violations == [] and used == {key}
    # without the entry the same import fails
    violations, _ = find_upward_imports(fake_package, FAKE_LAYERS)
    assert [(v.module, v.imported) for v in violations] == [key]


def test_walker_refuses_a_module_in_no_layer(fake_package: Path) -> None:
    _write(fake_package, {"stray.py": "x = 1\n"})
    violations, _ = find_upward_imports(fake_package, FAKE_LAYERS)
    assert [(v.module, v.rule) for v in violations] == [
        ("fakepkg.stray", "stray is in no layer: add it to LAYERS")
    ]
