"""ketapain.protocols: the protocol library (declarative TOML files and their loader)."""

from ketapain.protocols.library import Protocol, get_protocol, list_protocols, load_protocol_file

__all__ = ["Protocol", "get_protocol", "list_protocols", "load_protocol_file"]
