"""Where a run's events and plots go: ``--out``, ``--sink`` and ``--report``.

- `_PLAIN_SINKS`: the sink types ``--sink`` can name without settings in the model file.
- `_output_sink(path, append=...)`: the file sink of ``--out`` (CSV, Parquet or JSON Lines).
- `_named_sink(spec, name, append=...)`: the sink of ``--sink NAME``.
- `_plot_module()`: `dogesim.report.plots`, or a `DogesimError` naming the missing extra.
- `_write_report(args, spec, result, out)`: the occupancy plot of ``--report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from dogesim.engine import effective_model
from dogesim.errors import DogesimError

#: Sink types `--sink` can name without settings in the model file.
_PLAIN_SINKS = ("stdout", "printing", "counting", "memory")


def _plot_module() -> Any:
    """`dogesim.report.plots`; a one-line error when matplotlib or pandas is missing."""
    try:
        from dogesim.report import plots
    except ImportError as exc:
        raise DogesimError(
            f"plots need matplotlib and pandas ({exc}); pip install 'dogesim[plot]'"
        ) from None
    return plots


def _output_sink(path: str, *, append: bool = False) -> Any:
    """The sink of ``--out PATH``: CSV for .csv files, Parquet for .parquet, else JSON Lines
    ('-': stdout)."""
    from dogesim.report.parquet_reader import is_parquet
    from dogesim.sinks.compression import log_format
    from dogesim.sinks.files import CsvSink, JsonLinesSink

    if is_parquet(path):
        from dogesim.sinks.registry import BuildContext, sink_type

        return sink_type("parquet").build({"path": path}, BuildContext("out", "--out", append))
    if path != "-" and log_format(path) == "csv":
        # A resumed CSV continues after the checkpoint's offset, under the file's header.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return CsvSink(path, append=append)
    if path != "-":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JsonLinesSink(path, append=append)


def _named_sink(spec: Any, name: str, *, append: bool = False) -> Any:
    """The sink of ``--sink NAME``: one of the model file's, or a plain one."""
    from dogesim.modelfile import SinkSpec

    if name in spec.sinks:
        return spec.sinks[name].build(append=append)
    if name in _PLAIN_SINKS:
        return SinkSpec(name, name, {}).build()
    raise DogesimError(
        f"--sink {name!r}: the model file has no such sink (its sinks: "
        f"{', '.join(spec.sinks) or 'none'}) and it is not one of {', '.join(_PLAIN_SINKS)}"
    )


def _write_report(args: argparse.Namespace, spec: Any, result: Any, out: TextIO) -> None:
    """The occupancy plot of --report, when asked for."""
    if not args.report:
        return
    plots = _plot_module()
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    # the file's own model, so the analytic line knows its dwell laws (a result does not)
    model = effective_model(spec.model, spec.tick_ms, spec.churn, ())
    figure = plots.plot_occupancy(result, model=model, title=f"{spec.name}: occupancy per state")
    figure.savefig(args.report, dpi=110)
    if not args.quiet:
        print(f"occupancy plot -> {args.report}", file=out)
