"""The results layer: many runs put together into the paper's numbers.

One module per concept: `paper_numbers` (the paper's published values, from paper_numbers.yaml),
`seeds` (seed statistics), `grid` (the lambda/gamma grid winner), `comparisons` (paired significance
against AT and between ISEAT and each baseline), `columns` and `tables` (the paper's tables: `table_specs`
what each holds, `table_rows` the rows from our results, `table_rendering` Markdown, CSV and LaTeX from
columns defined once, `significance_files` the comparisons), `figures`, `index` (the results page) and
`writers` (atomic CSV and figure files, shared with `iseat.analysis`). No module here imports torch.

Evaluation files (aa.json, pgd.json of `iseat evaluate`) hold accuracies as fractions in [0, 1];
tables and figures show percentages, like the paper.
"""

from iseat.common.errors import UserError


class ResultsError(UserError, ValueError):
    """Missing or inconsistent input; the message is one line."""
