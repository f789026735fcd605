"""Run a few lines of Python in a fresh interpreter from the repository's root.

For tests about what a process imports or loads first, which this test process (with
everything imported already) cannot show. Import it as ``from tests import interpreter``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with this interpreter; its output captured as text, never raising."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
