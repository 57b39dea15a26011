"""Custom Rasa NLU components of the project (registered with Rasa's default recipe)."""
