"""Registry of published ketamine PK models, one module each.

Examples
--------
>>> [m.name for m in list_models()][:3]
['domino-cl79', 'domino', 'clements-250']
>>> get_model("domino").drug.value
'racemic'
"""

from __future__ import annotations

from ketapain.errors import UnknownNameError
from ketapain.pharmacology.model import PKModel
from ketapain.pharmacology.models import (
    clements_1981,
    domino_1984,
    flint_2017,
    herd_2007,
    hijazi_2003,
    kamp_2020,
)

__all__ = ["DEFAULT_MODEL", "get_model", "list_models"]

_MODELS: dict[str, PKModel] = {
    m.name: m
    for m in (
        kamp_2020.MODEL,
        domino_1984.MODEL,
        clements_1981.MODEL,
        herd_2007.MODEL,
        hijazi_2003.MODEL,
        flint_2017.MODEL,
    )
}

#: Default for chronic-pain infusions of an hour or more (shared/reference §7a).
DEFAULT_MODEL = "domino-cl79"


def list_models() -> list[PKModel]:
    """Return the published models, default first."""
    return list(_MODELS.values())


def get_model(name: str) -> PKModel:
    """Return the published model called ``name``."""
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, list(_MODELS)) from None
