"""A music streaming service at one-second ticks: the fine-tick model of the benchmarks.

Listeners open the app, move between pages, play songs and leave; every chance is a rate per
unit of time, so the model runs at 1 s ticks (or any other) with the same law.

- `Listener`, `ListenerFactory`: listeners with an account (none, free or paid), whether they
  are signed in, a payment card, and counters (songs played, skips, likes, ads, sessions).
- `PAGES`: the pages each segment sees (guest, free, paid); a state is ``segment:page``, and
  `OFFLINE` is the state between sessions.
- `SESSION_PROFILE`: when sessions start: an hourly profile of the day, damped on weekends.
- `states()`: every state name, offline first.
- `transition_table()`: every transition as a `Spec` (trigger, from, to, rate, callback,
  profile, whether the service sees the event).
- `build_model(sinks)`: the `dogesim.Model` (46 states, 255 transitions).
- `music_simulation(sinks, users, days)`: a ready `Simulation` at 1 s ticks.
- `SIZES`: the benchmark sizes (10k users for 2 and 7 days of 1 s ticks).

Sessions end in two ways: the listener closes the app (an event), or goes quiet and the
session times out after the 30-minute gap a streaming service uses to cut sessions. The gap
is a small per-second chance of leaving, ``1 per 30m`` (about 0.056% per second); the
service never sees the timeout itself, so those transitions feed no sinks.

Callbacks veto what a listener cannot do: a session resumes in the segment of the listener's
account, only listeners with an account log in, free listeners have six skips per session and
hear an ad after every three songs, only listeners with a card can subscribe.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dogesim.engine import Simulation
from dogesim.model import Model, Transition
from dogesim.rates import Profile, Rate

__all__ = [
    "OFFLINE",
    "PAGES",
    "SESSION_PROFILE",
    "SIZES",
    "TICK_MS",
    "TIMESTAMP_START",
    "Listener",
    "ListenerFactory",
    "Size",
    "Spec",
    "build_model",
    "music_simulation",
    "states",
    "transition_table",
]

#: The tick the model is meant for: one second.
TICK_MS = 1000
#: Monday 2026-01-05 00:00 UTC, so a week-long run covers one weekend.
TIMESTAMP_START = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc).timestamp() * 1000)

OFFLINE = "offline"

_COMMON = ("home", "search", "browse", "genre", "artist", "album", "playlist", "player")
_MEMBER = ("radio", "library", "liked", "queue", "podcast", "settings", "account")

#: The pages each segment sees: guests can only sign up or log in beyond the catalogue, free
#: listeners hear ads and may upgrade, paid listeners download, read lyrics and pick hi-fi.
PAGES: dict[str, tuple[str, ...]] = {
    "guest": (*_COMMON, "signup", "login"),
    "free": (*_COMMON, *_MEMBER, "upgrade", "ad_break"),
    "paid": (*_COMMON, *_MEMBER, "downloads", "lyrics", "hifi"),
}

#: Where each page links to (links to pages a segment does not have are left out).
_LINKS: dict[str, tuple[str, ...]] = {
    "home": ("search", "browse", "library", "radio", "settings", "signup", "login", "upgrade",
             "downloads"),
    "search": ("artist", "album", "playlist", "home"),
    "browse": ("genre", "playlist", "podcast", "home"),
    "genre": ("playlist", "artist", "browse"),
    "artist": ("album", "radio", "home"),
    "album": ("artist", "search", "home"),
    "playlist": ("artist", "album", "home"),
    "player": ("queue", "lyrics", "artist", "home"),
    "radio": ("artist", "home"),
    "library": ("liked", "playlist", "album", "downloads", "home"),
    "liked": ("library", "home"),
    "queue": ("player", "home"),
    "podcast": ("browse", "home"),
    "settings": ("account", "hifi", "home"),
    "account": ("settings", "upgrade", "home"),
    "upgrade": ("home",),
    "downloads": ("library", "home"),
    "lyrics": ("player",),
    "hifi": ("settings",),
    "signup": ("login", "home"),
    "login": ("signup", "home"),
}  # fmt: skip

#: Pages with a play button (a move to the player that plays a song).
_PLAYABLE = ("search", "artist", "album", "playlist", "radio", "liked", "downloads", "podcast")

#: Sessions per hour of the day (UTC), relative to the daily mean: quiet nights, a morning
#: commute, an evening peak.
_HOURLY = (
    0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.7, 1.3, 1.5, 1.1, 0.9, 0.9,
    1.1, 1.0, 0.9, 1.0, 1.2, 1.5, 1.7, 1.8, 1.7, 1.4, 1.0, 0.5,
)  # fmt: skip
#: Weekends are damped: fewer commutes, fewer sessions.
SESSION_PROFILE = Profile(hourly=_HOURLY, weekly=(1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.7))

# Rates per hour.
_NAVIGATE = 150.0  # page to page, split over a page's links (one click every 24 s)
_PLAY = 40.0  # pressing play on a page with a play button
_NEXT_SONG = 17.0  # a song lasts about 3.5 minutes
_SKIP = 10.0
_LIKE = 3.0
_LEAVE_PLAYER = 6.0  # from the player back to pages, split over its links
_AD_END = 120.0  # an ad lasts 30 s
_CLOSE_APP = 1.0
_SESSION_GAP = "30m"  # the quiet time after which a session counts as ended
_ACCOUNT = 20.0  # sign up, log in, subscribe, cancel, log out
_SESSIONS_PER_DAY = 3.0
_FREE_SKIPS = 6
_SONGS_PER_AD = 3


@dataclass
class Listener:
    """One listener of the service and what they did so far."""

    user_id: int
    account: str  # "none", "free" or "paid"
    signed_in: bool
    has_card: bool
    songs_played: int = 0
    songs_since_ad: int = 0
    session_skips: int = 0
    skips: int = 0
    likes: int = 0
    ads_heard: int = 0
    sessions: int = 0


class ListenerFactory:
    """Creates listeners with ids 0, 1, 2, ...: a quarter without an account, a fifth paying,
    most of those with an account signed in. Draws from the global `random` module (seeded by
    a dogesim run), as doge-datagen factories do."""

    def __init__(self) -> None:
        self.next_id = 0

    def create(self) -> Listener:
        """A new listener."""
        draw = random.random()
        account = "none" if draw < 0.25 else "paid" if draw >= 0.8 else "free"
        signed_in = account != "none" and random.random() < 0.9
        listener = Listener(self.next_id, account, signed_in, random.random() < 0.6)
        self.next_id += 1
        return listener


# -- callbacks: a falsy result vetoes the move ---------------------------------------------


def _resume_as(segment: str) -> Callable[[Listener, Transition], bool]:
    """A session opens in the segment of the listener's account (guests when signed out)."""

    def resume(listener: Listener, transition: Transition) -> bool:
        current = listener.account if listener.signed_in else "guest"
        if current != segment:
            return False
        listener.sessions += 1
        listener.session_skips = 0
        return True

    resume.__name__ = f"resume_{segment}"
    return resume


def play_song(listener: Listener, transition: Transition) -> bool:
    """A song starts."""
    listener.songs_played += 1
    listener.songs_since_ad += 1
    return True


def free_skip(listener: Listener, transition: Transition) -> bool:
    """Free listeners have a few skips per session; the next song starts."""
    if listener.session_skips >= _FREE_SKIPS:
        return False
    listener.session_skips += 1
    listener.skips += 1
    return play_song(listener, transition)


def paid_skip(listener: Listener, transition: Transition) -> bool:
    """Paid listeners skip as often as they like."""
    listener.skips += 1
    return play_song(listener, transition)


def like(listener: Listener, transition: Transition) -> bool:
    """The song goes to the listener's liked songs."""
    listener.likes += 1
    return True


def ad_due(listener: Listener, transition: Transition) -> bool:
    """An ad interrupts free listening after every few songs, not before."""
    if listener.songs_since_ad < _SONGS_PER_AD:
        return False
    listener.songs_since_ad = 0
    return True


def ad_heard(listener: Listener, transition: Transition) -> bool:
    """The ad played to its end."""
    listener.ads_heard += 1
    return True


def sign_up(listener: Listener, transition: Transition) -> bool:
    """A guest without an account opens a free one and is signed in."""
    if listener.account != "none":
        return False
    listener.account = "free"
    listener.signed_in = True
    return True


def _log_in_as(level: str) -> Callable[[Listener, Transition], bool]:
    """A guest logs in, landing in the segment of their account."""

    def log_in(listener: Listener, transition: Transition) -> bool:
        if listener.account != level:
            return False
        listener.signed_in = True
        return True

    log_in.__name__ = f"log_in_{level}"
    return log_in


def log_out(listener: Listener, transition: Transition) -> bool:
    """The listener signs out and browses on as a guest."""
    listener.signed_in = False
    return True


def subscribe(listener: Listener, transition: Transition) -> bool:
    """A free listener with a payment card subscribes."""
    if not listener.has_card:
        return False
    listener.account = "paid"
    return True


def cancel(listener: Listener, transition: Transition) -> bool:
    """A paid listener cancels and is free again."""
    listener.account = "free"
    return True


# -- the transition table ------------------------------------------------------------------

Callback = Callable[[Any, Transition], Any]


@dataclass(frozen=True)
class Spec:
    """One transition of the model, before it meets its sinks.

    Attributes:
        trigger: the event name.
        source: the state it leaves.
        target: the state it enters.
        rate: its chance per unit of time.
        callback: the action callback, or None.
        profile: the calendar profile shaping it, or None.
        seen: whether the service sees it (only seen transitions feed the sinks).
    """

    trigger: str
    source: str
    target: str
    rate: Rate
    callback: Callback | None = None
    profile: Profile | None = None
    seen: bool = True


def _per_hour(count: float) -> Rate:
    return Rate.per(count, "1h")


def _page_specs(segment: str, page: str) -> list[Spec]:
    """What a listener on `page` of `segment` can do next (the player and ads aside)."""
    here = f"{segment}:{page}"
    pages = PAGES[segment]
    links = [p for p in _LINKS.get(page, ()) if p in pages]
    specs: list[Spec] = []
    total = _LEAVE_PLAYER if page == "player" else _NAVIGATE
    for target in links:
        specs.append(
            Spec(f"open_{target}", here, f"{segment}:{target}", _per_hour(total / len(links)))
        )
    if page in _PLAYABLE:
        specs.append(Spec("play", here, f"{segment}:player", _per_hour(_PLAY), play_song))
    specs.append(Spec("close_app", here, OFFLINE, _per_hour(_CLOSE_APP)))
    specs.append(Spec("session_timeout", here, OFFLINE, Rate.per(1, _SESSION_GAP), seen=False))
    return specs


def _player_specs(segment: str) -> list[Spec]:
    """Listening: next songs, skips, likes, and for free listeners the ads."""
    player = f"{segment}:player"
    skip = free_skip if segment != "paid" else paid_skip
    specs = [
        Spec("next_song", player, player, _per_hour(_NEXT_SONG), play_song),
        Spec("skip", player, player, _per_hour(_SKIP), skip),
    ]
    if segment != "guest":
        specs.append(Spec("like", player, player, _per_hour(_LIKE), like))
    if segment == "free":
        ad = "free:ad_break"
        specs.append(Spec("ad_break", player, ad, _per_hour(_NEXT_SONG), ad_due))
        specs.append(Spec("ad_end", ad, player, _per_hour(_AD_END), ad_heard))
        specs.append(Spec("session_timeout", ad, OFFLINE, Rate.per(1, _SESSION_GAP), seen=False))
    return specs


def _account_specs() -> list[Spec]:
    """Moves between segments: signing up, logging in and out, subscribing, cancelling."""
    rate = _per_hour(_ACCOUNT)
    return [
        Spec("sign_up", "guest:signup", "free:home", rate, sign_up),
        Spec("log_in", "guest:login", "free:home", rate, _log_in_as("free")),
        Spec("log_in_paid", "guest:login", "paid:home", rate, _log_in_as("paid")),
        Spec("subscribe", "free:upgrade", "paid:home", rate, subscribe),
        Spec("cancel", "paid:account", "free:home", _per_hour(_ACCOUNT / 10), cancel),
        Spec("log_out", "free:account", "guest:home", rate, log_out),
        Spec("log_out", "paid:account", "guest:home", rate, log_out),
    ]


def _session_specs() -> list[Spec]:
    """From offline a session opens at home in the listener's segment (the others veto)."""
    rate = Rate.per(_SESSIONS_PER_DAY, "1d")
    return [
        Spec("open_app", OFFLINE, "guest:home", rate, _resume_as("guest"), SESSION_PROFILE),
        Spec("resume_free", OFFLINE, "free:home", rate, _resume_as("free"), SESSION_PROFILE),
        Spec("resume_paid", OFFLINE, "paid:home", rate, _resume_as("paid"), SESSION_PROFILE),
    ]


def states() -> tuple[str, ...]:
    """Every state: offline, then each segment's pages."""
    return (OFFLINE, *(f"{segment}:{page}" for segment, pages in PAGES.items() for page in pages))


def transition_table() -> list[Spec]:
    """Every transition of the model, state by state."""
    specs = _session_specs()
    for segment, pages in PAGES.items():
        for page in pages:
            if page != "ad_break":
                specs.extend(_page_specs(segment, page))
        specs.extend(_player_specs(segment))
    specs.extend(_account_specs())
    return specs


def build_model(sinks: Sequence[Any] = ()) -> Model:
    """The music model, every event the service sees feeding `sinks` (timeouts feed none)."""
    model = Model(states(), OFFLINE, name="music", tick_ms=TICK_MS)
    for spec in transition_table():
        # Model.add takes a Transition, whose constructor is typed for rates.
        model.add(
            Transition(
                spec.trigger,
                spec.source,
                spec.target,
                spec.rate,
                spec.callback,
                sinks if spec.seen else (),
                profile=spec.profile,
            )
        )
    return model


@dataclass(frozen=True)
class Size:
    """A benchmark size: users and 1 s ticks."""

    users: int
    ticks: int


#: The benchmark sizes: 10k users for 2 days and for a week of 1 s ticks.
SIZES = {"2d": Size(10_000, 2 * 86_400), "7d": Size(10_000, 7 * 86_400)}


def music_simulation(
    sinks: Sequence[Any] = (),
    *,
    users: int = 10_000,
    days: float = 2.0,
    seed: int | None = None,
) -> Simulation:
    """A `Simulation` of `users` listeners for `days` at 1 s ticks from `TIMESTAMP_START`."""
    return Simulation(
        build_model(sinks),
        users,
        subject_factory=ListenerFactory(),
        ticks=round(days * 86_400_000 / TICK_MS),
        tick_ms=TICK_MS,
        timestamp_start=TIMESTAMP_START,
        seed=seed,
    )
