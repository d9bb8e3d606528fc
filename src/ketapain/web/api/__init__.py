"""The JSON REST API, one router per concept, mounted under ``/api/v1``."""
