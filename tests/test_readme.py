"""Every ```python block of README.md and of each page under docs/ runs, in order, in one
namespace per file, so the examples of the README and of the documentation cannot rot."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def run_blocks(path: Path) -> None:
    namespace: dict = {}
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for i, code in enumerate(python_blocks(path)):
        try:
            exec(compile(code, f"{name} python block {i + 1}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{name} block {i + 1} failed: {error!r}\n{code}") from error


def test_readme_python_snippets_run():
    assert python_blocks(README), "README.md has no python examples"
    run_blocks(README)


def test_the_docs_have_examples():
    assert len(PAGES) >= 8, "docs/ lost its pages"
    with_code = [p.name for p in PAGES if python_blocks(p)]
    for page in ("drop-in.md", "neurons.md", "nir.md"):  # the pages whose use is code
        assert page in with_code, f"docs/{page} has no python example"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT / "docs"))
)
def test_docs_python_snippets_run(page):
    run_blocks(page)


def test_a_failing_block_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(AssertionError, match="block 2 failed"):
        run_blocks(page)
