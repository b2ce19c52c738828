"""What the results-page tests share: a published run must name a clean commit of this repository's history."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def assert_clean_commit_of_this_history(code: dict[str, Any] | None) -> None:
    """``code`` (a run's recorded ``{"commit", "modified"}``) names a commit without local changes that HEAD
    descends from, so the page's figures can be reproduced from this history."""
    assert code is not None and not code["modified"]
    ancestry = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "--is-ancestor", code["commit"], "HEAD"], check=False
    )
    assert ancestry.returncode == 0, f"commit {code['commit']} is not an ancestor of HEAD"
