"""``import rnnkit as rk`` reaches what the README and the docs pages use, and every ``__all__`` lists names that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rnnkit as rk

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_name_in_all_exists_and_is_public():
    for name in rk.__all__:
        assert hasattr(rk, name), name
        assert not name.startswith("_") or name == "__version__"


@pytest.mark.parametrize(
    "module",
    [m for m in rk.__all__ if hasattr(getattr(rk, m), "__path__") or m in ("baselines", "diagnostics", "config")],
)
def test_each_public_module_lists_its_api(module):
    mod = getattr(rk, module)
    names = getattr(mod, "__all__", None)
    assert names, f"rk.{module} has no __all__"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"rk.{module}.__all__ names missing objects: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_what_the_issue_readme_and_docs_name_is_reachable(page):
    assert rk.training.Trainer and rk.baselines.Persistence and rk.tasks.task_class("quantile")
    used = sorted(set(re.findall(r"\brk\.([A-Za-z_][\w.]*[A-Za-z_0-9])", page.read_text(encoding="utf-8"))))
    if page == README:
        assert used, "the README uses no rk. name"
    for dotted in used:
        obj = rk
        for part in dotted.split("."):
            assert hasattr(obj, part), f"rk.{dotted}: {part!r} is not reachable"
            obj = getattr(obj, part)
