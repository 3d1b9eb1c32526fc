"""Flags derived from dataclasses: one flag per field of :class:`jaxstyle.config.StyleConfig` (its
sections' fields included, as ``--{prefix}{name}``) and of the job option classes, and the parsed
flags turned back into those dataclasses. A field's ``metadata`` gives its help, choices, metavar,
help group and, where it differs from the field's name, its flag."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def _field_type(cls, field: dataclasses.Field) -> tuple[Any, bool]:
    """(converter, is_sequence) for a field's annotation."""
    hint = typing.get_type_hints(cls)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin is tuple:
        return typing.get_args(hint)[0], True
    return hint, False


def _comma_list(convert):
    def parse(text: str):
        try:
            return tuple(convert(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None

    return parse


def flag_name(field: dataclasses.Field, prefix: str = "") -> str:
    return field.metadata.get("flag") or "--" + prefix + field.name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls, title: str, *, prefix: str = "", dest: str = "",
              only: tuple[str, ...] | None = None) -> None:
    """One flag per field of dataclass ``cls`` in a help group ``title`` (fields with a ``group``
    get their own); nested sections get theirs. Flags not given stay absent from the namespace, so
    the dataclass's defaults (and the preset's) apply. ``only``: just these top-level fields."""
    groups: dict[str | None, Any] = {None: parser.add_argument_group(title)}
    for field in dataclasses.fields(cls):
        if only is not None and field.name not in only:
            continue
        if "section" in field.metadata:
            add_flags(parser, field.default_factory, f"{field.metadata['section']} ({cls.__name__}.{field.name})",
                      prefix=field.metadata["prefix"], dest=f"{dest}{field.name}.")
            continue
        name = field.metadata.get("group")
        if name not in groups:
            groups[name] = parser.add_argument_group(f"{name} ({cls.__name__})")
        convert, is_seq = _field_type(cls, field)
        kwargs: dict[str, Any] = {"dest": dest + field.name, "default": argparse.SUPPRESS,
                                  "help": field.metadata.get("help", "")}
        default = field.default if field.default is not dataclasses.MISSING else None
        if convert is bool:
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            if default is not None:
                shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
                kwargs["help"] += f" [default: {shown}]"
            kwargs["type"] = _comma_list(convert) if is_seq else convert
        for key in ("choices", "metavar"):
            if key in field.metadata:
                kwargs[key] = field.metadata[key]
        groups[name].add_argument(flag_name(field, prefix), **kwargs)


def from_flags(cls, args: argparse.Namespace, *, dest: str = ""):
    """The dataclass ``cls`` from the parsed flags of :func:`add_flags` (defaults where not given)."""
    values = {}
    for field in dataclasses.fields(cls):
        if "section" in field.metadata:
            values[field.name] = from_flags(field.default_factory, args, dest=f"{dest}{field.name}.")
        elif hasattr(args, dest + field.name):
            values[field.name] = getattr(args, dest + field.name)
    return cls(**values)


def given_flags(cls, args: argparse.Namespace, *, dest: str = "") -> list[str]:
    """The flags of ``cls``'s top-level fields that were given on the command line."""
    return [flag_name(field) for field in dataclasses.fields(cls)
            if "section" not in field.metadata and hasattr(args, dest + field.name)]


def given_section_flags(cls, args: argparse.Namespace, section: str) -> list[str]:
    """The flags of ``cls``'s section ``section`` (e.g. StyleConfig's ``video``) that were given."""
    field = next(f for f in dataclasses.fields(cls) if f.name == section)
    return [flag_name(f, field.metadata["prefix"]) for f in dataclasses.fields(field.default_factory)
            if hasattr(args, f"{section}.{f.name}")]
