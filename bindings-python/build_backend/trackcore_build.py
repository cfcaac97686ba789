"""The PEP 517 build backend of trackcore: maturin's, except that a source build
on a machine without Rust's ``cargo`` stops at once with a message saying what
to do, instead of maturin's fallback of downloading a Rust toolchain (about
1 GB) into a temporary directory without asking.

Set ``TRACKCORE_DOWNLOAD_RUST=1`` to allow that download anyway.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping, Optional

import maturin

NO_CARGO = """
trackcore: building from source needs Rust's `cargo` on PATH, and none was found.
  - Install a prebuilt wheel instead (CPython 3.10+, no Rust needed):
        pip install trackcore-*-cp310-abi3-*.whl
    (bindings-python/run-tests.sh builds one into target/wheels/).
  - Or install Rust (https://rustup.rs) and run the same command again.
  - Or set TRACKCORE_DOWNLOAD_RUST=1 to let maturin download a temporary
    Rust toolchain (about 1 GB) for this build.
"""


def _require_cargo() -> None:
    if shutil.which("cargo") is None and os.environ.get("TRACKCORE_DOWNLOAD_RUST") != "1":
        raise SystemExit(NO_CARGO)


def get_requires_for_build_wheel(config_settings: Optional[Mapping[str, Any]] = None) -> list:
    _require_cargo()
    return maturin.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings: Optional[Mapping[str, Any]] = None) -> list:
    _require_cargo()
    return maturin.get_requires_for_build_editable(config_settings)


def get_requires_for_build_sdist(config_settings: Optional[Mapping[str, Any]] = None) -> list:
    _require_cargo()
    return maturin.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    _require_cargo()
    return maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    _require_cargo()
    return maturin.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(wheel_directory: str, config_settings: Optional[Mapping[str, Any]] = None,
                metadata_directory: Optional[str] = None) -> str:
    _require_cargo()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory: str, config_settings: Optional[Mapping[str, Any]] = None,
                   metadata_directory: Optional[str] = None) -> str:
    _require_cargo()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    _require_cargo()
    return maturin.build_sdist(sdist_directory, config_settings)
