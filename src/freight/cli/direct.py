"""A command's plain command line parsed without typer's machinery (typer.main, click's command and
parser, the coercion of every parameter): ~30-50 ms of `freight run -- true`, a tenth of it.

The command function stays the one declaration of its options: the names, the kinds and the
defaults are read from its own signature (its `typer.Option` and `typer.Argument` annotations), and
the function is called with what typer would pass it. Only the plain forms are taken here:
`--name VALUE`, `--name=VALUE`, `-n VALUE`, a flag, repeated options for a list, then the command
(after `--`, or from the first argument on, as `allow_interspersed_args=False` has it). Anything else
(`--help`, an unknown option, a value typer would convert or reject: a bad number, a missing value)
returns None, and the command line goes to typer, which says what is wrong in its own words.
Which commands are called this way: `Entry.direct` in cli/registry.py.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class _Option:
    param: str
    kind: type  # str, int, Path or bool (a flag)
    many: bool  # a list: the option repeats


@dataclass(frozen=True)
class _Signature:
    options: dict[str, _Option]  # by every name it is given on the command line ("--memory", "-m")
    argument: str  # the parameter that takes the command


def call(target: str, args: list[str]) -> tuple[Callable[..., Any], dict[str, Any]] | None:
    """The command function of `target` ("module:function") and the parameters `args` give it, or
    None when typer must parse them."""
    module, _, attribute = target.partition(":")
    func = getattr(importlib.import_module(module), attribute)
    signature = _signature(func)
    if signature is None:
        return None
    params = _parse(signature, args)
    return None if params is None else (func, params)


def _parse(signature: _Signature, args: list[str]) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        option = signature.options.get(name)
        if option is None:
            return None  # --help, a misspelt option, -m512M: typer's to take or to refuse
        if option.kind is bool:
            if eq:
                return None
            params[option.param] = True
            continue
        if not eq:
            if not rest:
                return None
            inline = rest.pop(0)
        value = _convert(option.kind, inline)
        if value is None:
            return None
        if option.many:
            params.setdefault(option.param, []).append(value)
        else:
            params[option.param] = value
    params[signature.argument] = rest or None
    return params


def _convert(kind: type, text: str) -> object | None:
    if kind is int:
        try:
            return int(text)
        except ValueError:
            return None
    return Path(text) if kind is Path else text


@functools.cache
def _signature(func: Callable[..., Any]) -> _Signature | None:
    """The options of `func`, or None when one is more than a plain option this parser takes (a
    callback, an environment variable, a count, another type): then typer parses every command line."""
    import typer.models

    hints = typing.get_type_hints(func, include_extras=True)
    options: dict[str, _Option] = {}
    arguments: list[str] = []
    for param in inspect.signature(func).parameters:
        hint = hints[param]
        if typing.get_origin(hint) is not typing.Annotated:
            return None
        base, *extras = typing.get_args(hint)
        info = next((e for e in extras if isinstance(e, typer.models.ParameterInfo)), None)
        if isinstance(info, typer.models.ArgumentInfo):
            arguments.append(param)
            continue
        if not isinstance(info, typer.models.OptionInfo) or not _plain(info):
            return None
        kind, many = _kind(base)
        decls = _names(param, info)
        if kind is None or decls is None:
            return None
        for decl in decls:
            options[decl] = _Option(param, kind, many)
    if len(arguments) != 1:
        return None
    return _Signature(options, arguments[0])


def _names(param: str, info: Any) -> tuple[str, ...] | None:
    """An option's names as typer reads them: in `Annotated[..., typer.Option("--name", "-n")]` the
    first name sits in `default` until typer moves it (utils.py); none given: `--param-name`."""
    decls = tuple(info.param_decls or ())
    if info.default is not ...:
        if not isinstance(info.default, str):
            return None
        decls = (info.default, *decls)
    if any("/" in d or not d.startswith("-") for d in decls):
        return None  # "--flag/--no-flag", or a name for the parameter itself
    return decls or ("--" + param.replace("_", "-"),)


def _plain(info: Any) -> bool:
    return (
        info.callback is None
        and info.envvar is None
        and info.parser is None
        and not info.count
        and not info.is_eager
        and info.prompt is False
        and info.default_factory is None
    )


def _kind(hint: Any) -> tuple[type | None, bool]:
    """str | None -> (str, False); list[str] | None -> (str, True); bool -> (bool, False)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) != 1:
            return None, False
        hint = rest[0]
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return (item if item in (str, int, Path) else None), True
    return (hint if hint in (str, int, Path, bool) else None), False
