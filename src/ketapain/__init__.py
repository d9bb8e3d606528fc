"""ketapain: ketamine infusion therapy for chronic pain.

The package is layered; each layer imports only those below it::

    cli | web | fhir | reports      edges
    clinic                          records
    protocols | analytics           rules
    pharmacology                    PK/PD engine (numpy/scipy only)
    units | sources | errors        foundation
"""

__version__ = "0.1.0"
