"""URLs in messages: `masked_url` shows a URL with its password hidden (standard library only,
so the registry and model files can use it without importing SQLAlchemy)."""

from __future__ import annotations

import re

from dogesim import redact

__all__ = ["masked_url"]


def masked_url(text: str) -> str:
    """`text` as a URL with any password replaced by ``***``, for messages.

    The last ``@`` ends the user part, so a password holding ``@`` is masked whole; when in
    doubt, more is hidden. Text without ``scheme://`` is not shown at all (it might be
    anything, a password included).
    """
    scheme, sep, rest = text.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return "(not shown: it is not of the form dialect://...)"
    # The userinfo ends at the last '@' before the query: an '@' in a query value is no
    # end of a password (its tail would show). Masking too much (a path holding '@') is
    # harmless; showing a password is not.
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    userinfo, at, hostpart = rest[:cut].rpartition("@")
    if at and ":" in userinfo:
        text = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}{rest[cut:]}"
    return redact.mask_url(text)  # and any ?password=... in the query
