"""The documentation site builds in strict mode, and every public object has a docstring.

``mkdocs build --strict`` fails on a broken link, a cross-reference to an snn object that does
not exist (docs/_griffe_rst.py turns the docstrings' ``:class:`...``` roles into references) and
a docstring whose arguments do not match the signature. mkdocs does not notice a *missing*
docstring (the object is simply not shown), so the second half of this file checks that, from the
source, for every name in ``snn.__all__`` and every public function and class of the documented
modules.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import snn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "snn"
# nn.Module's protocol: documented once by torch and by the class docstring
PROTOCOL_METHODS = {"forward", "extra_repr"}


def _missing_plugins() -> list[str]:
    names = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")
    return [name for name in names if importlib.util.find_spec(name.split(".")[0]) is None]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(_missing_plugins()),
    reason=f"the docs extra is not installed ({', '.join(_missing_plugins())}): "
    'pip install -e ".[docs]"',
)
def test_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, "mkdocs build --strict failed:\n" + log[-6000:]
    assert "WARNING" not in log, log[-6000:]
    # the pages of each use, the tutorials, the figures, and an API entry for each of snn.__all__
    for page in ("training", "drop-in", "neurons", "single-neuron", "nir", "scaling", "speed"):
        assert (site / page / "index.html").is_file(), page
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "notebooks" / notebook.stem / "index.html").is_file(), notebook.name
    for figure in (ROOT / "docs" / "figures").glob("*.png"):
        assert (site / "figures" / figure.name).is_file(), figure.name
    reference = "".join(p.read_text() for p in (site / "api").rglob("index.html"))
    for name in snn.__all__:
        obj = getattr(snn, name)
        path = (
            obj.__name__ if isinstance(obj, type(snn)) else f"{obj.__module__}.{obj.__qualname__}"
        )
        assert f'id="{path}"' in reference, f"snn.{name} ({path}) has no entry in the API reference"


# -- docstrings, read from the source ---------------------------------------------------------


def _exports(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(element) for element in node.value.elts]
    return None


def undocumented(source: str, module: str, only: set[str] | None = None) -> list[str]:
    """The public functions, classes and methods in ``source`` that have no docstring.

    Public means: in ``__all__`` if the module has one, else not starting with ``_``; a class's
    public methods too, except nn.Module's protocol and overrides of a method documented on a
    base class defined in the same file.
    """
    tree = ast.parse(source)
    exports = _exports(tree)
    defined = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    names = only if only is not None else exports if exports is not None else defined
    missing = []
    for name in sorted(names):
        node = defined.get(name)
        if node is None:
            continue  # re-exported: checked where it is defined
        if ast.get_docstring(node) is None:
            missing.append(f"{module}.{name}")
        if isinstance(node, ast.ClassDef):
            missing += _undocumented_methods(node, defined, f"{module}.{name}")
    return missing


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _documented_on_a_base(cls: ast.ClassDef, name: str, defined: dict) -> bool:
    for base in cls.bases:
        parent = defined.get(base.id if isinstance(base, ast.Name) else "")
        if isinstance(parent, ast.ClassDef):
            method = _methods(parent).get(name)
            if method is not None and ast.get_docstring(method) is not None:
                return True
            if _documented_on_a_base(parent, name, defined):
                return True
    return False


def _undocumented_methods(cls: ast.ClassDef, defined: dict, path: str) -> list[str]:
    return [
        f"{path}.{name}"
        for name, method in _methods(cls).items()
        if not name.startswith("_")
        and name not in PROTOCOL_METHODS
        and ast.get_docstring(method) is None
        and not _documented_on_a_base(cls, name, defined)
    ]


def _documented_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))  # snn.kernels too: its page shows each module's __all__


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_public_object_has_a_docstring():
    missing = []
    for path in _documented_modules():
        source = path.read_text()
        if ast.get_docstring(ast.parse(source)) is None:
            missing.append(_module_name(path))
        missing += undocumented(source, _module_name(path))
    assert not missing, "public objects without a docstring: " + ", ".join(missing)


def test_every_name_of_snn_all_is_documented():
    for name in snn.__all__:
        obj = getattr(snn, name)
        module = obj if isinstance(obj, type(snn)) else sys.modules[obj.__module__]
        source = Path(module.__file__).read_text()
        if obj is module:
            assert ast.get_docstring(ast.parse(source)), f"snn.{name} has no module docstring"
        else:
            assert not undocumented(source, module.__name__, {obj.__name__}), f"snn.{name}"


def test_the_check_finds_a_missing_docstring():
    source = '''
__all__ = ["documented", "Layer"]

def documented():
    """Yes."""

def bare():
    pass

class Base:
    """A base."""
    def step(self):
        """Documented here, so overrides need not repeat it."""

class Layer(Base):
    """A layer."""
    def forward(self, x):
        return x
    def step(self):
        return 1
    def reset(self):
        return 0
'''
    assert undocumented(source, "m") == ["m.Layer.reset"]  # bare is not in __all__
    assert undocumented(source.replace('"Layer"]', '"Layer", "bare"]'), "m") == [
        "m.Layer.reset",
        "m.bare",
    ]
