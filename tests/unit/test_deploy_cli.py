"""What the deployment files run must exist: commands in the real Typer app, settings in the real classes.

The helpers here resolve ``feedback ARGS`` against :data:`pipeline.cli.app` (Click parses the
arguments, so an unknown option fails too) and find the pydantic-settings class each command
loads, by reading the command's own source (``load(SomeSettings)``). The compose and Kubernetes
tests use them; this module tests the helpers themselves on commands that must always exist.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
import typer
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from pipeline import cli


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")  # Typer ships its own Click: duck-type the group


def cli_command(args: list[str]) -> Any:
    """The Click command ``feedback ARGS`` runs; AssertionError naming what does not exist."""
    cmd: Any = typer.main.get_command(cli.app)
    rest = list(args)
    path = ["feedback"]
    while _is_group(cmd):
        assert rest and not rest[0].startswith("-"), f"`{' '.join(path)}` needs a subcommand"
        name = rest.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, (f"`{' '.join([*path, name])}` is not a command of the feedback CLI "
                                 f"(known under `{' '.join(path)}`: {sorted(cmd.commands)})")
        cmd = sub
        path.append(name)
    try:  # the remaining arguments must parse as that command's options
        cmd.make_context(" ".join(path), rest, resilient_parsing=False)
    except Exception as exc:  # Click's UsageError (Typer's vendored Click)
        if not hasattr(exc, "format_message"):
            raise
        raise AssertionError(f"`{' '.join(path + rest)}`: {exc.format_message()}") from None
    return cmd


def settings_class(cmd: Any) -> type[BaseSettings]:
    """The settings class the command validates at start-up: the ``load(X)`` in its source."""
    func = inspect.unwrap(cmd.callback)  # type: ignore[arg-type]
    source = inspect.getsource(func)
    match = re.search(r"\bload\((\w+)", source)
    assert match, f"{func.__name__} loads no settings class"
    name = match.group(1)
    local = re.search(rf"from ([\w.]+) import [^\n]*\b{name}\b", source)
    namespace: Any = importlib.import_module(local.group(1)) if local else None
    cls = getattr(namespace, name) if namespace else func.__globals__[name]
    assert isinstance(cls, type) and issubclass(cls, BaseSettings)
    return cls


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable the class reads (prefix + field name, or the field's aliases)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):  # e.g. metrics_port: FEEDBACK_METRICS_PORT and the former name
            names.update(str(choice).upper() for choice in alias.choices if isinstance(choice, str))
        else:
            names.add((alias if isinstance(alias, str) else prefix + field_name).upper())
    return names


def all_settings_classes() -> set[type[BaseSettings]]:
    """The settings classes of every command of the CLI (recursively through groups)."""
    found: set[type[BaseSettings]] = set()

    def walk(cmd: Any) -> None:
        if _is_group(cmd):
            for sub in cmd.commands.values():
                walk(sub)
            return
        with contextlib.suppress(AssertionError):  # e.g. `schema`: reads no settings
            found.add(settings_class(cmd))

    walk(typer.main.get_command(cli.app))
    return found


def known_env_names() -> set[str]:
    return set().union(*(env_names(cls) for cls in all_settings_classes()))


@contextmanager
def only_env(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly these FEEDBACK_* variables set (others removed), restoring afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("FEEDBACK_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def validate_env(cls: type[BaseSettings], env: Mapping[str, str], where: str) -> BaseSettings:
    """Every variable is a setting of ``cls``, and the class accepts the values (as at start-up)."""
    unknown = sorted(set(env) - env_names(cls))
    assert not unknown, f"{where}: {unknown} are not settings of {cls.__name__} (pipeline/config.py)"
    from pipeline.config import load

    with only_env(env):
        return load(cls, _env_file=None)


# -- the helpers on commands that exist since the spine ------------------------------------------
def test_cli_command_resolves_groups_and_rejects_unknown_commands_and_options() -> None:
    assert cli_command(["sink", "warehouse"]).name == "warehouse"
    assert cli_command(["process"]).name == "process"
    with pytest.raises(AssertionError, match="not a command"):
        cli_command(["sink", "nonexistent"])
    with pytest.raises(AssertionError, match="needs a subcommand"):
        cli_command(["sink"])
    with pytest.raises(AssertionError, match="No such option"):
        cli_command(["process", "--no-such-option"])


def test_settings_class_follows_each_commands_load_call() -> None:
    from pipeline.config import HttpSettings, ProcessorSettings, SinkSettings

    assert settings_class(cli_command(["serve-http"])) is HttpSettings
    assert settings_class(cli_command(["process"])) is ProcessorSettings or issubclass(
        settings_class(cli_command(["process"])), ProcessorSettings)
    assert settings_class(cli_command(["migrate"])) is SinkSettings
    assert "FEEDBACK_WAREHOUSE_URL" in env_names(SinkSettings)
    assert "FEEDBACK_WAREHOUSE_URL" not in env_names(HttpSettings)
    assert "FEEDBACK_METRICS_HOST" in known_env_names()


def test_validate_env_names_the_bad_variable() -> None:
    from pipeline.config import ConfigError, SinkSettings

    with pytest.raises(AssertionError, match="FEEDBACK_NO_SUCH_THING"):
        validate_env(SinkSettings, {"FEEDBACK_NO_SUCH_THING": "1"}, "test")
    with pytest.raises(ConfigError, match="FEEDBACK_SINK_BATCH_SIZE"):
        validate_env(SinkSettings, {"FEEDBACK_SINK_BATCH_SIZE": "0"}, "test")
    settings = validate_env(SinkSettings, {"FEEDBACK_SINK_BATCH_SIZE": "7"}, "test")
    assert settings.sink_batch_size == 7  # type: ignore[attr-defined]
