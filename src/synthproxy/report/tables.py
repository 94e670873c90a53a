"""Writing result tables as CSV (for machines), Markdown (for the README/report) and LaTeX (for papers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from synthproxy.data.atomic import write_text_atomic


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def to_markdown(df: pd.DataFrame, bold: dict[str, set[int]] | None = None) -> str:
    """GitHub Markdown table; ``bold`` maps a column to the row positions to emphasise."""
    bold = bold or {}
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for i, row in enumerate(df.itertuples(index=False)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            s = _fmt(v)
            cells.append(f"**{s}**" if i in bold.get(c, set()) else s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, caption: str, label: str, bold: dict[str, set[int]] | None = None) -> str:
    """A booktabs LaTeX table (no pandas Styler: it needs jinja2 and gives little control)."""
    bold = bold or {}
    cols = list(df.columns)
    # text left, numbers right (pandas >= 3 stores text as the "str" dtype, not object)
    align = "".join("l" if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype) else "r" for c in cols)
    lines = [
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}", rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}", r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in cols) + r" \\", r"\midrule",
    ]
    for i, row in enumerate(df.itertuples(index=False)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            s = _latex_escape(_fmt(v)).replace("±", r"$\pm$")
            cells.append(rf"\textbf{{{s}}}" if i in bold.get(c, set()) else s)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_table(df: pd.DataFrame, prefix: Path | str, caption: str, formats: Sequence[str] = ("csv", "md", "tex"),
                bold: dict[str, set[int]] | None = None, csv: pd.DataFrame | None = None) -> list[Path]:
    """Write ``prefix.csv/.md/.tex``; returns the paths written. The Markdown starts with the caption.

    ``csv`` replaces ``df`` in the CSV file: a long table of plain numbers for machines, while Markdown and
    LaTeX show the formatted ``df`` (e.g. ``mean ± std`` columns per synth).
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        path = prefix.with_suffix(f".{fmt}")
        if fmt == "csv":
            write_text_atomic(path, (df if csv is None else csv).to_csv(index=False))
        elif fmt == "md":
            write_text_atomic(path, f"{caption}\n\n" + to_markdown(df, bold))
        elif fmt == "tex":
            write_text_atomic(path, to_latex(df, caption, f"tab:{prefix.name}", bold))
        else:
            raise ValueError(f"unknown table format {fmt}")
        out.append(path)
    return out
