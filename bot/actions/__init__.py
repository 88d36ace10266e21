"""Rasa custom actions: thin adapters from Rasa's action protocol to our domain services."""
