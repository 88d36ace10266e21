"""Shared foundations every module may import: settings, database, models, i18n, services."""
