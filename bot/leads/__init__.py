"""Seller leads for the police, kept only with the user's consent (docs/compliance.md).

* ``extract``  a seller's details in one message, read before masking (never the user's own data);
* ``consent``  on the Rasa server: hold a candidate in memory, ask once, store it only on a yes;
* ``schema``   the leads store's tables (the ``leads`` branch of bot/migrations);
* ``store``    recording, reading (``leads`` role, every read audited), exporting and retention;
* ``cli``      ``python -m bot leads list|export|audit``.
"""
