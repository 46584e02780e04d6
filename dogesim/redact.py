"""Secret masking: keep passwords out of messages, reprs and output.

- `MASK`: what a secret is replaced by (``***``).
- `register_secret(value)`: remember a value (a password setting, an environment value a
  model file put in a secret place) so that `mask` hides it wherever it appears later.
- `register_setting(key, value)`: register the secret of a secret setting (of
  ``user:password``, the password: `secret_part`).
- `mask(text)`: `text` with every registered secret, URL password and secret query or DSN
  value masked; `secret_spans(text)`: where those URL passwords and values are.
- `mask_url(url)`: one URL with its password masked, also when the password holds ``@``,
  and the values of secret query parameters (``?password=...``); the rest stays.
- `is_secret_key(key)`: whether a setting's (or an environment variable's) name says it
  holds a secret (``sasl.password``, ``ssl.key.password``, ``basic.auth.user.info``,
  ``sasl.oauthbearer.client.secret``, ``token``, ``DB_PASSWORD``, ...).
- `secret_values(settings)`: the values of secret keys in a settings dict (nested too).
- `SecretDict`: a dict whose repr masks the values of secret keys and URL passwords.
- `MaskingStream`: a text stream wrapper that masks everything written through it (the CLI
  writes its messages through one).

The registry is process-wide on purpose: a secret read by the model loader must stay
hidden in a message a sink raises much later, in another module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = [
    "MASK",
    "MaskingStream",
    "SecretDict",
    "is_secret_key",
    "mask",
    "mask_url",
    "register_secret",
    "register_setting",
    "secret_part",
    "secret_spans",
    "secret_values",
]

MASK = "***"

#: Values shorter than this are not registered: masking every "1" or "on" in a message
#: would make messages unreadable, and such values cannot be meaningful secrets.
MIN_SECRET_LENGTH = 4

# A setting's or an environment variable's name that says its value is a secret. A bare
# ``key`` is not one (a Kafka message key, ``key_column``), nor ``ssl.key.location`` (a path).
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|pwd|secret|token|credential|jaas|user[._-]?info|authorization"
    r"|(api|private|access|signing)[._-]?key|ssl[._-]key[._-]pem|keystore[._-]key",
    re.IGNORECASE,
)
# Settings whose value is ``user:password``: only the password is a secret.
_USER_INFO_KEY = re.compile(r"user[._-]?info", re.IGNORECASE)

# Starting only where no scheme character precedes: one scan of a long word, not one per
# letter of it.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://")
# The authority of a URL (and any query written right after it) ends at '/', whitespace or
# a quote: userinfo holds no unencoded '/', and a path may hold an '@'.
_AUTHORITY = re.compile(r"[^\s'\"/]*")
_HOST_PORT = re.compile(r"[^:@]*(:[0-9]*)?")

# ?password=...&  — a secret given as a URL query parameter (libpq, JDBC and ODBC accept
# one), or as a keyword of a libpq DSN (``host=h password=pw``): its value runs to the next
# '&', ';', '#', whitespace or quote.
_QUERY_SECRET = re.compile(
    r"(?:^|(?<=[?&;\s]))[A-Za-z0-9_.\-]*(?:pass(?:word|wd)?|pwd|secret|token|api[._-]?key)="
    r"(?P<value>[^&;#\s'\"]+)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    """Hide `value` (as text) in everything `mask` handles from now on."""
    text = str(value)
    if len(text) < MIN_SECRET_LENGTH:
        return
    global _pattern
    with _lock:
        if text in _secrets:
            return
        _secrets.add(text)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_setting(key: object, value: object) -> None:
    """Hide the secret of setting `key` = `value` (`is_secret_key(key)`): the whole value, or
    the password of a ``user:password`` value (``basic.auth.user.info``), so that a URL
    quoting the same user and password still reads ``user:***@host``."""
    register_secret(secret_part(key, value))


def secret_part(key: object, value: object) -> str:
    """The part of a secret setting's value that is secret (see `register_setting`)."""
    text = str(value)
    if isinstance(key, str) and _USER_INFO_KEY.search(key) and ":" in text:
        return text.split(":", 1)[1]
    return text


def is_secret_key(key: object) -> bool:
    """Whether a setting (or an environment variable) called `key` holds a secret."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds URL passwords (between ``user:`` and ``@``) and values of secret
    query parameters or DSN keywords: (start, end) pairs, in order, not overlapping."""
    urls = _SCHEME.finditer(text) if "://" in text else ()
    spans = [span for m in urls if (span := _url_password(text, m.end()))]
    spans += [m.span("value") for m in _QUERY_SECRET.finditer(text)]
    return _merged(spans)


def _url_password(text: str, start: int) -> tuple[int, int] | None:
    """The span of the password of the URL whose authority starts at `start`, or None.

    The userinfo ends at the last '@' before the query ('?' or '#'), so a password holding
    '@' is masked whole and a query value holding '@' does not end it. With no '@' before
    the query, an '@' after it ends the userinfo unless what precedes it reads as
    ``host:port?key=...`` (then the '@' belongs to the query value).
    """
    authority = _AUTHORITY.match(text, start)
    region = authority.group(0) if authority else ""
    query = min((i for i in (region.find("?"), region.find("#")) if i >= 0), default=len(region))
    at = region.rfind("@", 0, query)
    if at < 0:
        at = region.rfind("@")
        if at < 0 or (_HOST_PORT.fullmatch(region[:query]) and "=" in region[query:at]):
            return None
    colon = region.find(":", 0, at)
    if colon < 0:
        return None
    return start + colon + 1, start + at


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def _masked_spans(text: str, spans: list[tuple[int, int]]) -> str:
    parts: list[str] = []
    position = 0
    for start, end in _merged(spans):
        parts.append(text[position:start] + MASK)
        position = end
    return "".join(parts) + text[position:]


def mask_url(url: str) -> str:
    """`url` with the password between ``user:`` and the last ``@`` of the userinfo replaced
    by `MASK`, and the value of a ``password``/``token``/``secret`` query parameter too; the
    rest (user, ':', host, port, path, query keys) stays as written."""
    return _masked_spans(url, secret_spans(url))


def mask(text: str) -> str:
    """`text` with every registered secret, URL password and secret query value replaced by
    `MASK`. The spans are found in the original text and merged, so no part of a secret
    is left showing when two of them overlap."""
    pattern = _pattern
    spans = [m.span() for m in pattern.finditer(text)] if pattern is not None else []
    if "://" in text or "=" in text:
        spans += secret_spans(text)
    return _masked_spans(text, spans) if spans else text


def _masked_value(key: object, value: Any) -> Any:
    if is_secret_key(key) and value is not None:
        return MASK
    if isinstance(value, dict) and not isinstance(value, SecretDict):
        return SecretDict(value)
    return value


class SecretDict(dict):
    """A dict that shows secret-keyed values and URL passwords as `MASK` in its repr.

    The values themselves are untouched (a sink needs the real password to connect).
    """

    def __repr__(self) -> str:
        shown = {k: _masked_value(k, v) for k, v in self.items()}
        return mask(dict.__repr__(shown))

    __str__ = __repr__


def secret_values(settings: dict[str, Any]) -> Iterable[str]:
    """The values of secret keys in `settings` and in the dicts nested in it (of a
    ``user:password`` value, the password: `secret_part`)."""
    for key, value in settings.items():
        if isinstance(value, dict):
            yield from secret_values(value)
        elif is_secret_key(key) and value is not None:
            yield secret_part(key, value)


class MaskingStream:
    """Wraps a text stream; everything written through it passes through `mask` first."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, encoding, ...: as the wrapped stream (tqdm and warnings ask).
        return getattr(self._stream, name)
