"""The results layer: many runs put together into the paper's numbers.

One module per concept: `paper_numbers` (the paper's published values, from paper_numbers.yaml),
`seeds` (seed statistics), `grid` (the lambda/gamma grid winner), `comparisons` (paired significance
against AT and between ISEAT and each baseline), `columns` and `tables` (the paper's tables; every
column defined once, rendered as Markdown, CSV and LaTeX), `figures`, `index` (the results page) and
`writers` (atomic CSV and figure files, shared with `iseat.analysis`).

Evaluation files (aa.json, pgd.json of `iseat evaluate`) hold accuracies as fractions in [0, 1];
tables and figures show percentages, like the paper.
"""

from iseat.common.errors import UserError


class ResultsError(UserError, ValueError):
    """Missing or inconsistent input; the message is one line."""
