"""The README's client example runs against a real server and prints what the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from sdk_harness import new_email

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks_after(heading: str) -> tuple[str, str]:
    section = README.read_text().split(heading, 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    output = re.search(r"which prints\n\n```\n(.*?)```", section, re.S)
    assert code and output, "the client section lost its example or its output"
    return code.group(1), output.group(1)


def test_the_readme_example_prints_what_the_readme_says(server: Any, tmp_path: Path) -> None:
    code, expected = _blocks_after("## The Python client")
    code = code.replace("http://127.0.0.1:8000", server.url).replace("ann@example.com", new_email())
    script = tmp_path / "example.py"
    script.write_text(code)
    ran = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == expected
