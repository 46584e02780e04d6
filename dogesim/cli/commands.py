"""The small commands of ``dogesim``: validate, graph, models, init; and model names.

- `_cmd_validate`, `_cmd_graph`, `_cmd_models`, `_cmd_init`: one function per command,
  each ``(args, out, err) -> exit status``.
- `_resolve_models(args)`: a bare model name (``banking``) means the shipped model when no
  such file exists.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

from dogesim.cli.arguments import _writable
from dogesim.cli.status import EXIT_OK, _UsageError
from dogesim.errors import DogesimError


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim validate MODEL.yaml...`: load each file, print its summary."""
    from dogesim.modelfile import load_model_file

    for path in args.models:
        spec = load_model_file(path)
        print(f"{path}: ok: {spec.summary()}", file=out)
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim graph MODEL.yaml`: DOT or Mermaid text, or a PNG."""
    from dogesim.graph import render_png, to_dot, to_mermaid
    from dogesim.modelfile import load_model_file

    spec = load_model_file(args.model)
    model = spec.model
    if args.output:
        _writable("--output", args.output)
    if args.format == "png":
        if not args.output:
            raise _UsageError("dogesim graph: --format png needs --output FILE.png")
        render_png(model, args.output)
        print(f"graph -> {args.output}", file=out)
        return EXIT_OK
    text = to_dot(model) if args.format == "dot" else to_mermaid(model)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"graph -> {args.output}", file=out)
    else:
        out.write(text)
    return EXIT_OK


def _cmd_models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim models`: the shipped models with one-line descriptions."""
    from dogesim.modelfile.shipped import model_description, shipped_models

    models = shipped_models()
    if not models:
        raise DogesimError("no shipped models were found; reinstall dogesim")
    width = max(len(name) for name in models)
    for name, path in models.items():
        print(f"{name:<{width}}  {model_description(path)}", file=out)
    print(
        f"\nrun one with `dogesim run NAME` (e.g. dogesim run {next(iter(models))}); "
        f"copy one from {next(iter(models.values())).parent}",
        file=out,
    )
    return EXIT_OK


def _cmd_init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim init NAME`: write NAME.yaml, never over an existing file."""
    from dogesim.modelfile.shipped import starter_model

    name = args.name[: -len(".yaml")] if args.name.endswith(".yaml") else args.name
    try:
        text = starter_model(name)
    except ValueError as exc:
        raise _UsageError(f"dogesim init: {exc}") from None
    target = Path(args.directory) / f"{name}.yaml"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as handle:  # "x": never overwrite
            handle.write(text)
    except FileExistsError:
        raise _UsageError(
            f"dogesim init: {target} already exists; not overwritten (choose another NAME "
            "or remove it)"
        ) from None
    except OSError as exc:
        raise _UsageError(f"dogesim init: {target}: cannot be written: {exc.strerror}") from None
    print(f"model file -> {target}; run it with: dogesim run {target}", file=out)
    return EXIT_OK


def _resolve_models(args: argparse.Namespace) -> None:
    """Bare model names (``banking``) mean the shipped model when no such file exists."""
    from dogesim.modelfile.shipped import resolve_model, shipped_models

    def resolve(text: str) -> str:
        path = resolve_model(text)
        bare = os.sep not in text and not (os.altsep and os.altsep in text)
        if bare and not Path(path).exists():
            names = ", ".join(shipped_models()) or "none"
            raise _UsageError(
                f"dogesim: {text}: no such model file, and no shipped model of that name "
                f"(shipped: {names}; see dogesim models)"
            )
        return path

    if getattr(args, "model", None):
        args.model = resolve(args.model)
    if getattr(args, "models", None):
        args.models = [resolve(text) for text in args.models]
