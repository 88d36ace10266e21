"""Rasa NLU/Core project of the assistant (config, domain, data) and its build helper.

`from nlu.train import ensure_model` returns the path of a trained model that matches
the current inputs, training one first if needed.
"""
