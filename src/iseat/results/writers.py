"""The one way results and analysis outputs are written: CSV columns and figures, each atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from iseat.common.io import atomic_path, write_text_atomic

IMAGE_FORMATS = ("png", "svg", "pdf")


def image_format(out) -> str:
    """The image format named by `out`'s suffix; ValueError (one line) for anything else."""
    fmt = Path(out).suffix.lstrip(".").lower()
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"{out}: the figure must end in one of {', '.join('.' + f for f in IMAGE_FORMATS)}")
    return fmt


def save_figure(fig, out, dpi: int = 150) -> None:
    """Save a matplotlib figure at `out` (format from the suffix) atomically."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=image_format(out), dpi=dpi, bbox_inches="tight")


def csv_cell(value) -> str:
    """Floats in full precision (repr), everything else as text; None is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def csv_text(columns: dict) -> str:
    """CSV text of named, equally long columns ({header: values})."""
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of unequal length {sorted(lengths)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def write_csv(path, columns: dict) -> None:
    """`csv_text(columns)` written atomically at `path`."""
    try:
        text = csv_text(columns)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    write_text_atomic(path, text)


def read_csv(path) -> dict:
    """Columns of a CSV written by `write_csv`, as float arrays where possible."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    out = {}
    for j, name in enumerate(rows[0]):
        values = [r[j] for r in rows[1:]]
        try:
            out[name] = np.array(values, dtype=np.float64)
        except ValueError:
            out[name] = np.array(values)
    return out


def write_npz(path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
