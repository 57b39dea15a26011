"""Count referrals to official channels, per channel, from the tracker store.

Every answer that hands a user to an official channel records ``"<channel>:<why>"`` in the ``referrals`` slot
(bot/guidance.py, bot/hardship.py). This report reads Rasa's SQL tracker store (SQLite by default, PostgreSQL
by URL), takes each conversation's latest ``referrals`` value and counts, per channel and per reason, how many
conversations were referred. ``python -m bot referrals [--db URL]``.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Dict, Tuple

from sqlalchemy import create_engine, text

from bot import PROJECT_ROOT

DEFAULT_DB_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"
"""The embedded default tracker store (endpoints.yml)."""


def count_referrals(db_url: str = DEFAULT_DB_URL) -> Tuple[Counter, Counter]:
    """``(per_channel, per_channel_and_reason)`` counts of conversations referred, from Rasa's ``events`` table.

    Raises sqlalchemy errors if the database cannot be read (e.g. no tracker store there yet).
    """
    engine = create_engine(db_url, future=True)
    latest: Dict[str, list] = {}
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT sender_id, data FROM events WHERE type_name = 'slot' ORDER BY id")
        )
        for sender_id, data in rows:
            event = json.loads(data)
            if event.get("name") == "referrals" and isinstance(event.get("value"), list):
                latest[sender_id] = event["value"]
    engine.dispose()
    per_channel: Counter = Counter()
    per_reason: Counter = Counter()
    for referrals in latest.values():
        pairs = {tuple(str(entry).split(":", 1)) for entry in referrals if ":" in str(entry)}
        per_channel.update({channel for channel, _ in pairs})
        per_reason.update(pairs)
    return per_channel, per_reason


def print_report(db_url: str = DEFAULT_DB_URL) -> None:
    """Print the referral counts as a table."""
    per_channel, per_reason = count_referrals(db_url)
    if not per_channel:
        print("No referrals recorded yet.")
        return
    print(f"{'channel':40s} conversations")
    for channel, count in per_channel.most_common():
        print(f"{channel:40s} {count}")
        for (name, reason), reason_count in sorted(per_reason.items()):
            if name == channel:
                print(f"    {reason:36s} {reason_count}")
