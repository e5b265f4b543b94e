"""A Markdown page linking the Section 3 study outputs, each under its caption (no torch: `iseat analyse index`)."""

from __future__ import annotations

from pathlib import Path

from iseat.common.errors import UserError
from iseat.common.io import write_text_atomic
from iseat.results.index import relpath

CAPTIONS = {
    "fig1a": "Fig. 1a: AV statistics of the training set per epoch",
    "fig1b": "Fig. 1b: margin (Eq. 7) histogram and CDF, ε budget marked",
    "fig2": "Fig. 2: perturbed images along the adversarial direction, with class and confidence",
    "fig3": "Fig. 3: loss landscape (Eq. 8) along the adversarial and a random direction",
    "fig4": "Fig. 4: Eq. 9 strength η against accuracy, robustness and AV SD (training and test set)",
    "table1": "Tab. 1: AV statistics and robustness per method",
    "margin": "margin study summary (share disordered, quantiles, AV statistics, throughput)",
    "landscape": "loss landscape settings and the samples shown",
}


def index_page(files: list[Path], out: Path, title: str = "Section 3 analyses") -> None:
    """A Markdown page at `out` linking the study outputs, each under its caption."""
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise UserError(f"not found: {', '.join(missing[:3])}")
    lines = [f"# {title}", ""]
    for f in files:
        caption = CAPTIONS.get(f.stem) or CAPTIONS.get(f.stem.split("_")[0], f.stem)  # fig1a_<run> -> fig1a
        rel = relpath(f, out.parent)
        lines.append(f"- [{caption}]({rel}) (`{rel}`)")
    write_text_atomic(out, "\n".join(lines) + "\n")
