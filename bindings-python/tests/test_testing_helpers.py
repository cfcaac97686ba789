"""trackcore.testing without pytest, the pytest plugin's registration, and the
README's testing snippets run exactly as written."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_trackcore_testing_works_without_pytest_installed(run_python):
    code = """
import json, sys
sys.modules["pytest"] = None  # as if pytest were not installed: `import pytest` raises ImportError
import trackcore, trackcore.testing
tracker = trackcore.testing.memory_tracker()
tracker.track("a", user_id="u")
with trackcore.testing.capture() as captured:
    captured.track("b", user_id="u")
try:
    captured.track("c", user_id="u")
    closed = False
except trackcore.TrackerClosedError:
    closed = True
print(json.dumps({"recorded": [e["event_name"] for e in tracker.recorded() + captured.recorded()],
                  "closed_after_the_block": closed,
                  "pytest_imported": any(m == "_pytest" or m.startswith("_pytest.") for m in sys.modules)}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"recorded": ["a", "b"], "closed_after_the_block": True,
                                         "pytest_imported": False}


def test_the_pytest_plugin_is_registered_from_its_own_module():
    plugins = importlib.metadata.entry_points(group="pytest11")
    assert [p.value for p in plugins if p.name == "trackcore"] == ["trackcore.pytest_plugin"]


def test_the_readme_testing_snippets_run_as_written(tmp_path):
    section = README.read_text().split("\n## Testing your code\n", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(snippets) >= 2, "the pytest and the Django snippet"
    for i, code in enumerate(snippets):
        (tmp_path / f"test_readme_snippet_{i}.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(snippets)} passed" in result.stdout, result.stdout
