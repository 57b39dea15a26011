"""Rasa SDK actions: thin adapters that read the tracker, call into ``bot/`` and return events."""
