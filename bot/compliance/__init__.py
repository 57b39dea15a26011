"""The compliance record (全程留痕): one row per conversation and one per turn, built from the events Rasa publishes
to its event broker, hash-chained, reported on and deleted when past retention.

* ``schema``     the tables (created by the ``compliance`` branch of bot/migrations);
* ``record``     how each Rasa event changes the conversation and turn rows;
* ``chain``      the turn rows' hash chain and ``python -m bot audit verify``;
* ``consumer``   the long-running service reading the broker (Rasa's SQL broker or RabbitMQ) into the store;
* ``report``     ``python -m bot report``: counts by day, week, channel, segment, tactic, bank or debt type;
* ``charts``     the report's PNG charts;
* ``retention``  ``python -m bot retention apply``;
* ``sample``     a generated sample of conversations, for the README's chart.

See docs/compliance.md.
"""
