"""``python -m beatx.cli``."""

from __future__ import annotations

from beatx.cli import main

main()
