"""Console output shared by every command.

Progress and logs go to stderr (rich); stdout is kept for results so that the
last stdout line of a command can be its JSON summary, which scripts parse.

May import: nothing of medqa.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

err = Console(stderr=True)


def emit_json(summary: Any) -> None:
    """Print the machine-readable summary as one line, last on stdout."""
    sys.stdout.write(json.dumps(summary, default=str) + "\n")
    sys.stdout.flush()
