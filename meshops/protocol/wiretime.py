"""Time on the wire: ``EE_TIMESTAMP`` text, ``EE_TIMEZONE`` labels and ``EE_TZ`` zone names.

The reference writes local time with a ``UTC+2``-style label and the IANA zone name; reading
both back robustly is what lets a receiver judge a message's age across time zones.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["local_zone_name", "offset_label", "parse_time", "zone_from_label", "zone_named"]

_TIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?")
_ZONE_KEY = re.compile(r"[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,3}")
_OFFSET_LABEL = re.compile(r"UTC([+-])([0-9]{1,2})(?::?([0-9]{2}))?")


@functools.lru_cache(maxsize=256)
def zone_named(name: str) -> ZoneInfo | None:
    if not _ZONE_KEY.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def offset_label(offset: dt.timedelta | None) -> str:
    """``UTC+2`` as the reference writes it; ``UTC+5:30`` where hours alone would be wrong."""
    minutes = round((offset or dt.timedelta()).total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_from_label(label: str) -> dt.tzinfo | None:
    match = _OFFSET_LABEL.fullmatch(label)
    if match is None:
        return None
    hours, minutes = int(match.group(2)), int(match.group(3) or 0)
    if hours > 23 or minutes > 59:
        return None
    offset = dt.timedelta(hours=hours, minutes=minutes)
    return dt.timezone(-offset if match.group(1) == "-" else offset)


@functools.cache
def local_zone_name() -> str | None:
    """The IANA name of this machine's zone (for ``EE_TZ``), checked against the real offset."""
    candidates = []
    if os.environ.get("TZ"):
        candidates.append(os.environ["TZ"].lstrip(":"))
    link = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in link:
        candidates.append(link.split("zoneinfo/", 1)[1])
    now = dt.datetime.now().astimezone()
    for name in candidates:
        zone = zone_named(name)
        if zone is not None and now.astimezone(zone).utcoffset() == now.utcoffset():
            return name
    offset = now.utcoffset() or dt.timedelta()
    if offset.total_seconds() % 3600 == 0:  # a fixed whole-hour zone; note the POSIX sign flip
        hours = int(offset.total_seconds() // 3600)
        return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"
    return None


def parse_time(text: str) -> dt.datetime | None:
    """``%Y-%m-%d %H:%M:%S.%f`` (or without the fraction), naive; None if not that."""
    if not _TIME_TEXT.fullmatch(text):
        return None
    try:
        return dt.datetime.fromisoformat(text)  # the regex pins the format; this is fast
    except ValueError:  # e.g. month 13
        return None
