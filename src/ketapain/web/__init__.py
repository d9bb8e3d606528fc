"""The web edge: the JSON REST API under ``/api/v1`` (and, later, the clinic's pages).

Build the application with :func:`ketapain.web.app.create_app`; ``ketapain serve`` runs it.
"""
