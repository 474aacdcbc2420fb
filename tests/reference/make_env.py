"""Lay .venv-ref over the project's .venv: run with .venv-ref's python, passing the .venv python.

Writes two .pth files into .venv-ref's site-packages: one adding the project venv's site-packages
(torch, transformers and the editable stylecond, shared read-only) and, last, one adding the import-only
stubs (tests/reference/stubs), so a real package, if ever installed, wins over its stub.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

main_python = sys.argv[1]
here = Path(__file__).resolve().parent
site = Path(sysconfig.get_paths()["purelib"])
main_site = subprocess.run(
    [main_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    check=True, capture_output=True, text=True,
).stdout.strip()  # fmt: skip
(site / "zz_project_venv.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
(site / "zzz_reference_stubs.pth").write_text(f"{here / 'stubs'}\n")
print(f"{site}: project venv {main_site}, stubs {here / 'stubs'}")
