"""Check the installed package from the outside: every public module imports, and the ``echo-splade``
console script and each of its (sub)commands answer ``--help``. Run by ``.ci/run`` in its fresh venv.

    python scripts/check_install.py
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def packages() -> list[str]:
    """The sub-packages pyproject.toml declares (its ``[tool.setuptools] packages``, the one list of them)."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        declared = tomllib.load(handle)["tool"]["setuptools"]["packages"]
    return [name for name in declared if name != "echo_splade"]


def public_modules() -> list[str]:
    """``echo_splade`` and every sub-package/module whose name has no leading underscore."""
    names = ["echo_splade"]
    # The sub-packages are mapped from the repository's top-level folders (pyproject's package-dir), which an
    # editable install serves through its own finder: list them from the distribution, then walk each.
    for package in packages():
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


def command_paths() -> list[list[str]]:
    """Every command of the click CLI as its argument path (``[]`` is the group itself)."""
    import click

    from echo_splade.cli import cli

    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name])

    walk(cli, [])
    return paths


def main() -> int:
    failures: list[str] = []
    modules = public_modules()
    for name in modules:
        try:
            module = importlib.import_module(name)
            for attr in getattr(module, "__all__", ()):
                getattr(module, attr)  # lazy names resolve too
        except Exception as exc:  # noqa: BLE001 - report every broken module, not just the first
            failures.append(f"import {name}: {type(exc).__name__}: {exc}")
    script = Path(sys.executable).with_name("echo-splade")
    if not script.is_file():
        failures.append(f"console script missing: {script}")
    paths = command_paths()
    for path in paths:
        argv = [str(script), *path, "--help"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or "Usage:" not in result.stdout:
            failures.append(
                f"{' '.join(['echo-splade', *path, '--help'])}: rc {result.returncode}\n{result.stderr[-2000:]}"
            )
    print(f"install check: {len(modules)} public modules imported, {len(paths)} commands answered --help")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
