"""Human agent handoff: tickets for a human agent, the agent desk, and resuming the bot.

One job per module:

* ``config``      settings from config/handoff.yml and the environment;
* ``hours``       opening hours: parse, check a moment, describe in Chinese;
* ``priority``    the reason for a hand-over and the ticket's priority;
* ``summary``     the ticket summary and the PII-masked transcript from tracker events;
* ``schema``    the tables (migrated by bot.db, whose history is in bot/migrations/);
* ``store``       the ticket store (claim is atomic; every change audited);
* ``intake``      what ``action_handoff`` does: open a ticket and plan the replies;
* ``messages``    the handoff responses (domain/handoff.yml) rendered for the desk;
* ``rasa_client`` the Rasa HTTP API (tracker, append events to the user's channel);
* ``auth``        agent credentials; ``notifier`` the signed webhook; ``timeouts`` unclaimed tickets;
* ``desk``        the Sanic service and its page (``static/``).
"""
