"""Start the desk: ``python -m bot.handoff.desk [--host 127.0.0.1] [--port 5056]``."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from bot.db import upgrade_database
from bot.handoff.config import HandoffConfigError, load_settings
from bot.handoff.credentials import CredentialStore
from bot.handoff.desk import DEFAULT_PORT, create_app
from bot.handoff.rasa_client import RasaClient
from bot.handoff.store import TicketStore


def main(argv: Optional[List[str]] = None) -> int:
    """Check the settings, migrate the ticket store, and serve until stopped (one worker).

    Needs RASA_URL and RASA_AUTH_TOKEN, and HANDOFF_INTAKE_TOKEN in the environment (see
    bot.handoff.config). Returns 2, with the reason on stderr, on a configuration error; 0 after a clean stop.
    """
    parser = argparse.ArgumentParser(prog="python -m bot.handoff.desk", description="The agent desk.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s - %(message)s")
    try:
        settings = load_settings()
    except HandoffConfigError as err:
        print(f"Handoff configuration is invalid: {err}", file=sys.stderr)
        return 2
    if not settings.rasa_url or not settings.rasa_token:
        print("Set RASA_URL and RASA_AUTH_TOKEN so that the desk can reach the conversations.", file=sys.stderr)
        return 2
    if not settings.intake_token:
        print("Set HANDOFF_INTAKE_TOKEN so that the action server can hand conversations over.", file=sys.stderr)
        return 2
    upgrade_database(settings.database_url, "handoff")
    store = TicketStore.from_url(settings.database_url, webhook_enabled=bool(settings.webhook_url),
                                 reference_key=settings.reference_key)
    if not CredentialStore(store.engine).any_active():
        logging.getLogger(__name__).warning(
            "No agent credential is active: issue one with python -m bot agents issue <name>.")
    app = create_app(settings, store, RasaClient(settings.rasa_url, settings.rasa_token))
    app.run(host=args.host, port=args.port, access_log=False, motd=False, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
