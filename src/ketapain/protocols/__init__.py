"""ketapain.protocols: the protocol library, screening, dose planning and guardrails."""

from ketapain.protocols.library import get_protocol, list_protocols, load_protocol_file
from ketapain.protocols.schema import Protocol

__all__ = ["Protocol", "get_protocol", "list_protocols", "load_protocol_file"]
