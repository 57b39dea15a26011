"""Rasa input channels of the assistant. Each one screens user messages with ``guard`` first."""
