"""Publish finished tables into ``results/tables`` with an index page."""

from __future__ import annotations

import shutil
from pathlib import Path

from synthproxy.data.atomic import atomic_dir


def collect_tables(inputs: list[Path], out: Path) -> None:
    """Copy every table/figure file into ``out`` (replacing it) and write ``out/README.md``.

    ``out`` is built in a temporary folder and renamed, so it is either complete or absent.
    """
    with atomic_dir(out) as tmp:
        _fill(inputs, tmp)


def _fill(inputs: list[Path], tmp: Path) -> None:
    names = []
    for src in inputs:
        src = Path(src)
        if not src.exists():
            raise FileNotFoundError(f"table input missing: {src}")
        dst = tmp / src.name
        if dst.exists():
            raise FileExistsError(f"two table inputs share the name {src.name}")
        if src.is_dir():  # a page's files (e.g. the listening page's WAVs and spectrograms)
            shutil.copytree(src, dst)
            continue
        shutil.copy2(src, dst)
        names.append(src.name)
    index = ["# Tables and figures", "", "Produced by the synthproxy workflow (`snakemake results/tables`).", ""]
    for stem in sorted({Path(n).stem for n in names}):
        files = sorted(n for n in names if Path(n).stem == stem)
        md = next((n for n in files if n.endswith(".md")), None)
        index.append(f"## {stem}\n\nFiles: " + ", ".join(f"[{f}]({f})" for f in files) + "\n")
        if md:
            index.append((tmp / md).read_text())
        index += [f"![{f}]({f})\n" for f in files if f.endswith(".png")]
        index += [f"Open [{f}]({f}) in a browser.\n" for f in files if f.endswith(".html")]
    (tmp / "README.md").write_text("\n".join(index))
