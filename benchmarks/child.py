"""Entry point of a measurement child: ``python -m benchmarks.child module:function '{json}'``.

Runs one function with the JSON keyword arguments and prints its result dict as one
``BENCH-RESULT {json}`` line on stdout (see :func:`benchmarks.common.run_child`).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import warnings

from benchmarks.common import RESULT_MARK


def main(argv: list[str]) -> int:
    target, raw = argv[0], argv[1] if len(argv) > 1 else "{}"
    module_name, _, func_name = target.partition(":")
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(**json.loads(raw))
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
