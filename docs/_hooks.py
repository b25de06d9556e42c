"""mkdocs hook: the notebooks stay in notebooks/ (the tests execute them there) and are published
as docs/tutorials/<name>.ipynb, rendered by mkdocs-jupyter without being run."""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@event_priority(100)  # before mkdocs-jupyter's on_files turns .ipynb files into pages
def on_files(files, config):
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{notebook.name}",
                src_dir=str(NOTEBOOKS.parent),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")  # 0 for docs/*.md
    return markdown.replace(
        "](" + "../" * (depth + 1) + "notebooks/", "](" + "../" * depth + "notebooks/"
    )
