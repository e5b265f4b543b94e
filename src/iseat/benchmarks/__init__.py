"""Benchmarks of the pipeline's parts (loader throughput against the training step's consumption, ...)."""

import argparse
from pathlib import Path

from iseat.common.io import write_json_atomic, write_text_atomic


def report(result: dict, text: str, out: str | None, *, markdown: bool = False) -> int:
    """Print a benchmark's `text`; with `out`, write `result` there as JSON (and `text` beside it as .md)."""
    print(text)
    if out:
        written = [out]
        write_json_atomic(out, result)
        if markdown:
            written.append(str(Path(out).with_suffix(".md")))
            write_text_atomic(written[-1], text + "\n")
        print(f"wrote {' and '.join(written)}")
    return 0


def module_main(module, argv=None) -> int:
    """`python -m iseat.benchmarks.NAME`: parse with the module's `add_arguments` and call its `run`."""
    name = module.__spec__.name if module.__spec__ else module.__name__  # run with -m, __name__ is __main__
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=module.__doc__.splitlines()[0])
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))
