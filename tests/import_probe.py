"""Which heavy libraries a module pulls in at import, asked in a fresh interpreter (``nhmm --help``
imports every command module, so those must stay light)."""

from __future__ import annotations

import subprocess
import sys

#: Libraries a command module must not import at module level.
HEAVY = ("nautilus_trader", "pandas", "pyarrow", "numpy", "matplotlib", "ray", "xgboost")


def heavy_imports(module: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``heavy`` libraries loaded after ``import module`` in a new Python process."""
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]
