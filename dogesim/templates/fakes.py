"""Faker for templates: seeded instances, provider checks and plain results.

- `make_faker`: a `faker.Faker` for a locale, seeded from ``SeedSequence([seed, *path])``.
- `faker_seed`: the integer a template's Faker is seeded with.
- `provider_call`: the checked call of one provider (name, arguments), tried once at compile
  time on a probe instance so a bad name or argument is a compile error, never a mid-run one.
- `bound_provider`: a no-argument callable of one provider of a seeded Faker.
- `plain`: turns a provider's result into a value every sink can write (Decimal -> float,
  dates and times -> ISO 8601 text, UUID -> text, bytes -> hex, tuples/sets -> lists).

Faker is imported only here and only when a template uses it (the ``faker`` extra).
Reproducibility: the Faker of a template is seeded with `faker_seed` (run seed, template
path, locale), so the same run seed gives the same values, byte for byte, for a given Faker
version; draws happen in the template's field order, once per event. A few Faker providers
build their word lists from Python sets, so their order depends on ``PYTHONHASHSEED``
(Faker 40: the ``it_IT`` address provider's ``city``); streams using them are reproducible
only with ``PYTHONHASHSEED`` fixed.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dogesim.errors import ModelError, shown

__all__ = ["bound_provider", "faker_seed", "make_faker", "plain", "provider_call"]

_PLAIN = (str, int, float, bool, type(None))


def _import_faker() -> Any:
    try:
        import faker
    except ImportError as exc:
        raise ModelError(
            "templates with faker fields need the faker package: pip install 'dogesim[faker]'"
        ) from exc
    return faker


def faker_seed(seed: int, path: str, locale: str | Sequence[str] | None) -> int:
    """The 128-bit seed of a template's Faker: from ``SeedSequence([seed, *path, *locale])``."""
    tag = f"{path}#{locale if isinstance(locale, str) or locale is None else ','.join(locale)}"
    words = np.random.SeedSequence([int(seed), *tag.encode("utf-8")]).generate_state(4)
    return sum(int(w) << (32 * i) for i, w in enumerate(words.tolist()))


def make_faker(locale: str | Sequence[str] | None, seed: int, path: str) -> Any:
    """A new `faker.Faker` for `locale`, seeded for the template at `path` in run `seed`.

    Raises:
        ModelError: faker is not installed, or the locale is unknown.
    """
    faker = _import_faker()
    try:
        fake = faker.Faker(list(locale) if isinstance(locale, (list, tuple)) else locale)
    except AttributeError as exc:
        raise ModelError(f"{path}: unknown Faker locale {shown(locale)}: {exc}") from None
    fake.seed_instance(faker_seed(seed, path, locale))
    return fake


def _is_provider_method(fake: Any, name: str) -> bool:
    """`name` is a public method defined by one of the Faker's providers (not its machinery)."""
    if not name.isidentifier() or name.startswith("_"):
        return False
    factories = getattr(fake, "factories", None) or [fake]
    for factory in factories:
        for provider in factory.get_providers():
            if callable(getattr(type(provider), name, None)):
                return True
    return False


def provider_call(
    probe: Any, name: object, args: object, path: str
) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Check provider `name` with `args` (a mapping of keywords or a list) on `probe`.

    Returns ``(name, positional, keywords)``; calls the provider once on `probe` (a Faker
    that is not the template's, so the run's stream is untouched) to catch bad arguments.

    Raises:
        ModelError: unknown provider, arguments of the wrong shape, or the call fails.
    """
    if not isinstance(name, str) or not _is_provider_method(probe, name):
        raise ModelError(
            f"{path}: {shown(name)} is not a Faker provider (e.g. name, email, address, "
            "pydecimal; see https://faker.readthedocs.io/en/master/providers.html)"
        )
    positional: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    if isinstance(args, Mapping):
        if not all(isinstance(k, str) for k in args):
            raise ModelError(f"{path}.args: argument names must be strings, got {shown(args)}")
        keywords = dict(args)
    elif isinstance(args, (list, tuple)):
        positional = tuple(args)
    elif args is not None:
        raise ModelError(
            f"{path}.args: {shown(args)}: give the provider's arguments as a mapping or a list"
        )
    try:
        getattr(probe, name)(*positional, **keywords)
    except Exception as exc:
        raise ModelError(
            f"{path}: faker {name}({_arguments(positional, keywords)}) fails: {exc}"
        ) from None
    return name, positional, keywords


def _arguments(positional: tuple[Any, ...], keywords: Mapping[str, Any]) -> str:
    parts = [shown(a) for a in positional] + [f"{k}={shown(v)}" for k, v in keywords.items()]
    return ", ".join(parts)


def bound_provider(
    fake: Any, name: str, positional: tuple[Any, ...], keywords: Mapping[str, Any]
) -> Callable[[], Any]:
    """A no-argument callable drawing from provider `name` of `fake`."""
    if len(getattr(fake, "factories", ())) > 1:
        # With several locales Faker picks one each time the method is looked up.
        def each_time() -> Any:
            return getattr(fake, name)(*positional, **keywords)

        return each_time
    method = getattr(fake, name)
    if not positional and not keywords:
        return method
    return functools.partial(method, *positional, **keywords)


def plain(value: Any) -> Any:
    """`value` as something JSON, CSV, Avro and SQL sinks all take."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            return value.isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain(v) for v in items]
    return value
