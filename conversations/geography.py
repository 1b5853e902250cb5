"""French postal codes to departments: what matching needs to know about where a person lives."""

from __future__ import annotations

import re

_POSTAL_CODE = re.compile(r"^[0-9]{5}$")

# Overseas departments whose postal codes start with 97x; 975 (Saint-Pierre-et-Miquelon),
# 977/978 (Saint-Barthélemy, Saint-Martin) are overseas collectivities with their own codes.
_OVERSEAS = {"971", "972", "973", "974", "975", "976", "977", "978"}
# 98x are Monaco (980) and the Pacific collectivities, where the Collectif has no association.
_NOT_SERVED_PREFIX = "98"


def department_of(postal_code: str) -> str | None:
    """The department code ("93", "2A", "974") of a French postal code, or None if it is not one."""
    code = postal_code.strip()
    if not _POSTAL_CODE.match(code) or code.startswith(_NOT_SERVED_PREFIX):
        return None
    if code[:2] in ("96", "99"):
        return None
    if code.startswith("97"):
        return code[:3] if code[:3] in _OVERSEAS else None
    if code.startswith("20"):
        # Corsica: 200xx and 201xx are Corse-du-Sud, 202xx and 206xx Haute-Corse.
        return "2A" if code[2] in "01" else "2B"
    if code.startswith("00"):
        return None
    return code[:2]


def is_overseas(department: str) -> bool:
    return department in _OVERSEAS


# Overseas numbers are dialled "0692…" locally but belong to their own region's numbering plan.
_PHONE_REGIONS = {
    "971": "GP",
    "972": "MQ",
    "973": "GF",
    "974": "RE",
    "975": "PM",
    "976": "YT",
    "977": "BL",
    "978": "MF",
}


def phone_region(department: str | None) -> str:
    """The phonenumbers region in which a locally dialled number of that department is read."""
    return _PHONE_REGIONS.get(department or "", "FR")
