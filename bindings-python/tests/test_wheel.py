"""The wheel users install, and the source build that needs cargo.

The wheel (built by run-tests.sh into target/wheels, path in $TRACKCORE_WHEEL)
goes into a fresh venv on a PATH without cargo, rustc or rustup, and tracks an
event into a real emulator over HTTP. A source build on that PATH stops at once
with a message instead of downloading a Rust toolchain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

BINDING = Path(__file__).resolve().parents[1]
RUST_TOOLS = ("cargo", "rustc", "rustup")


def built_wheel() -> Path:
    path = os.environ.get("TRACKCORE_WHEEL")
    if not path or not os.path.isfile(path):
        pytest.fail(f"wheel not found at {path!r}: bindings-python/run-tests.sh builds it and sets TRACKCORE_WHEEL")
    return Path(path)


def path_without_rust(*first: Path) -> str:
    """This PATH minus every directory that holds cargo, rustc or rustup."""
    dirs = [str(d) for d in first] + [
        d for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any(os.path.exists(os.path.join(d, tool)) for tool in RUST_TOOLS)
    ]
    path = os.pathsep.join(dirs)
    for tool in RUST_TOOLS:
        assert shutil.which(tool, path=path) is None, tool
    return path


def env_without_rust(*first: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CARGO", "RUSTUP", "PYTHON", "MATURIN", "VIRTUAL_ENV"))}
    env["PATH"] = path_without_rust(*first)
    return env


def run(cmd: List[str], env: Dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_is_abi3_and_ships_the_typing_files():
    wheel = built_wheel()
    assert "-cp310-abi3-" in wheel.name, wheel.name
    assert wheel.name.endswith("_x86_64.whl") or wheel.name.endswith("_aarch64.whl"), wheel.name
    assert "-manylinux_" in wheel.name or "-linux_" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("trackcore/_native.abi3.so", "trackcore/__init__.pyi", "trackcore/py.typed"):
        assert name in names, name


def test_wheel_installs_without_cargo_into_a_fresh_venv_and_tracks_into_the_emulator(tmp_path, emulator):
    wheel = built_wheel()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = env_without_rust(venv / "bin")

    # --no-index: nothing is downloaded; a wheel install runs no build step.
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-deps",
                     "--disable-pip-version-check", str(wheel)], env, tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    code = """
import json, os, trackcore
tracker = trackcore.Tracker(os.environ["EMU_TOKEN"], base_url=os.environ["EMU_URL"])
tracker.track("installed-from-wheel", user_id="u-wheel", metadata={"price": trackcore.Money(4200, "eur")})
print(json.dumps({"flushed": tracker.flush(10), "native": trackcore._native.__file__, "stats": tracker.stats()}))
"""
    result = run([str(venv / "bin" / "python"), "-c", code],
                 {**env, "EMU_URL": emulator.url, "EMU_TOKEN": emulator.token}, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["flushed"] is True and report["stats"]["delivered"] == 1, report
    assert Path(report["native"]).resolve().is_relative_to(venv.resolve()), report["native"]

    (event,) = emulator.events()
    assert event["event_name"] == "installed-from-wheel" and event["user_id"] == "u-wheel"
    assert event["metadata"] == {"price": {"amount": 4200, "currency": "eur"}}


def test_a_source_build_without_cargo_stops_with_a_clear_message_instead_of_downloading_rust(tmp_path):
    # The dev venv has maturin, so pip runs the project's real build backend
    # without fetching anything; only cargo is missing.
    env = env_without_rust(Path(sys.executable).parent)
    env.pop("TRACKCORE_DOWNLOAD_RUST", None)
    result = run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-index", "--no-deps",
                  "--disable-pip-version-check", "--wheel-dir", str(tmp_path), str(BINDING)], env, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "building from source needs Rust's `cargo` on PATH" in output, output
    assert "TRACKCORE_DOWNLOAD_RUST=1" in output, output
    assert "puccinialin" not in output and "Rust not found, installing" not in output, output
    assert list(tmp_path.glob("*.whl")) == []
