"""Secret masking: keep passwords and ``${VAR}`` values out of messages, reprs and output.

- `MASK`: what a secret is replaced by (``***``).
- `register_secret(value)`: remember a value (an environment value a model file
  interpolated, a password setting) so that `mask` hides it wherever it appears later.
- `mask(text)`: `text` with every registered secret and every URL password masked.
- `mask_url(url)`: one URL with its password masked, also when the password holds ``@``,
  and the values of secret query parameters (``?password=...``).
- `is_secret_key(key)`: whether a setting's name says it holds a secret (``sasl.password``,
  ``ssl.key.password``, ``sasl.oauthbearer.client.secret``, ``token``, ...).
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
    "secret_values",
]

MASK = "***"

#: Values shorter than this are not registered: masking every "1" or "on" in a message
#: would make messages unreadable, and such values cannot be meaningful secrets.
MIN_SECRET_LENGTH = 4

_SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|credential|api[._-]?key)", re.IGNORECASE)

# scheme://user:password@host — the password runs to the LAST '@' before a '/' (greedy), so
# a password holding '@' is masked whole; whitespace, a quote or a '/' ends it (userinfo
# holds no unencoded '/', and a path may hold an '@').
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<password>[^\s'\"/]+)(?=@)"
)

# ?password=...&  — a secret given as a URL query parameter (libpq, JDBC and ODBC accept
# one): its value runs to the next '&', ';', '#', whitespace or quote.
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:[A-Za-z0-9_.\-]*(?:pass(?:word|wd)?|pwd|secret|token|api[._-]?key))=)"
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


def is_secret_key(key: object) -> bool:
    """Whether a setting called `key` holds a secret (its value must never be shown)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def mask_url(url: str) -> str:
    """`url` with the password between ``user:`` and the last ``@`` replaced by `MASK`, and
    the value of a ``password``/``token``/``secret`` query parameter too."""
    url = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, url)
    return _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, url)


def mask(text: str) -> str:
    """`text` with every registered secret and every URL password replaced by `MASK`."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = mask_url(text)
    return text


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
    """The values of secret keys in `settings` and in the dicts nested in it."""
    for key, value in settings.items():
        if isinstance(value, dict):
            yield from secret_values(value)
        elif is_secret_key(key) and value is not None:
            yield str(value)


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
