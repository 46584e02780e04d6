"""The ``sinks:`` and ``default_sinks:`` sections of a model file.

- `_read_sinks(src, top)`: every named sink (`dogesim.modelfile.sinks` reads one), guarded.
- `_read_default_sinks(top, sinks)`: the sinks of transitions that name none.
- `_guard_sink(sink)`: registers the sink's secrets for masking and checks a DB URL now.
- `_db_url_problem(url)`: what is wrong with a database URL, without its password.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dogesim import redact
from dogesim.errors import ModelError
from dogesim.modelfile.sinks import SinkSpec, _read_sink
from dogesim.modelfile.source import _describe, _Reader, _Source


def _read_sinks(src: _Source, top: _Reader) -> dict[str, SinkSpec]:
    """``sinks:``: each named sink, in file order (none without the key)."""
    sink_specs: dict[str, SinkSpec] = {}
    if not top.has("sinks"):
        return sink_specs
    sinks = top.mapping("sinks")
    for sink_name in sinks.node:
        if not isinstance(sink_name, str) or not sink_name:
            raise sinks.error(str(sink_name), f"sink name {_describe(sink_name)} is not text")
        sink_specs[sink_name] = _guard_sink(_read_sink(src, sinks, sink_name))
    return sink_specs


def _read_default_sinks(top: _Reader, sink_specs: Mapping[str, SinkSpec]) -> tuple[str, ...]:
    """``default_sinks:``: names of sinks defined under ``sinks:``."""
    if not top.has("default_sinks"):
        return ()
    default_sinks = tuple(top.string_list("default_sinks"))
    for sink_name in default_sinks:
        if sink_name not in sink_specs:
            raise top.error(
                "default_sinks",
                f"no sink named {sink_name!r}; sinks defined under "
                f"'sinks:' are {', '.join(sink_specs) or 'none'}",
            )
    return default_sinks


def _guard_sink(sink: SinkSpec) -> SinkSpec:
    """Hide the sink's secrets from reprs and messages, and check now what building it would
    check later (a DB URL), so that validate and run refuse the same files."""
    for value in redact.secret_values(sink.settings):
        redact.register_secret(value)
    sink.settings = redact.SecretDict(sink.settings)
    url = sink.settings.get("url")
    if sink.type == "db" and isinstance(url, str):
        problem = _db_url_problem(url)
        if problem is not None:
            raise ModelError(
                redact.mask(f"{sink.source}:{sink.line}: sinks.{sink.name}.url: {problem}")
            )
    return sink


#: A URL's ``user:password@`` as SQLAlchemy reads it: the user ends at ':' or '/', the
#: password at the first '@'.
_USERINFO = re.compile(r"[^:/]*(?::[^@]*)?@")


def _db_url_problem(url: str) -> str | None:
    """What is wrong with a database URL (without showing its password), or None."""
    head, sep, rest = url.partition("://")
    if not sep or not head:
        return (
            f"{redact.mask_url(url)!r} is not a database URL; write "
            "dialect://user:password@host:port/database, e.g. sqlite:///events.db"
        )
    # The user and password end at the first '@' (SQLAlchemy's reading: a password may hold
    # '/', '?' or '#'); the host part runs from there to the path or query.
    userinfo = _USERINFO.match(rest)
    host = re.split(r"[/?#]", rest[userinfo.end() :] if userinfo else rest, maxsplit=1)[0]
    if "@" in host:
        return (
            "the user or password holds '@': percent-encode it as %40 "
            "(urllib.parse.quote(password, safe=''))"
        )
    if host.startswith("["):  # [IPv6]:port
        port = host.partition("]")[2].removeprefix(":")
    else:
        port = host.rpartition(":")[2] if ":" in host else ""
    if port and not (port.isdigit() and int(port) <= 65535):
        return f"the port {port!r} of {redact.mask_url(url)!r} is not a number from 0 to 65535"
    return None
