"""Custom Rasa graph components.

Rasa inserts its working directory into ``sys.path``, so with ``cwd=nlu/`` these are
importable as ``components.<module>`` (the name used in ``config.yml`` and stored in
the trained model). Started from another directory, put ``nlu/`` on ``PYTHONPATH``.
"""
