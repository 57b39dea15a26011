"""Human agent handoff: tickets for a human agent, the agent desk, and resuming the bot (docs/handoff.md).

Two processes share this package. The action server (rasa-sdk alone) uses only ``priority``, ``summary``,
``contract`` and ``intake``; everything else is the desk's, which alone opens the ticket database.

* ``config``      the desk's settings from config/handoff.yml and the environment;
* ``hours``       opening hours: parse, check a moment, describe in Chinese;
* ``priority``    the reason for a hand-over and the ticket's priority;
* ``summary``     the ticket summary and the PII-masked transcript from tracker events;
* ``contract``    the intake JSON between the two: the new ticket and the desk's answer;
* ``intake``      what ``action_handoff`` does: send the ticket to the desk (HTTP) and plan the replies;
* ``schema``      the tables (migrated by bot.db, whose history is in bot/migrations/);
* ``store``       the ticket store (claim is atomic; every change audited);
* ``messages``    the handoff responses (domain/handoff.yml) rendered for the desk;
* ``rasa_client`` the Rasa HTTP API (tracker, append events to the user's channel);
* ``auth``        agent credentials and the intake service token; ``notifier`` the signed webhook;
  ``timeouts`` unclaimed tickets;
* ``desk``        the Sanic service: an app factory with one blueprint per concern, and its page (``static/``).
"""
