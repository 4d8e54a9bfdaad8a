"""Fediseer client and the rules that turn endorsements and censures into allow/deny sets.

Names are imported lazily so `import fediseer_sync` stays cheap (no aiohttp until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FediseerConfig": "fediseer_sync.config",
    "FediseerClient": "fediseer_sync.client",
    "fetch_trust": "fediseer_sync.sync",
    "compute_trust": "fediseer_sync.rules",
    "plan_sync": "fediseer_sync.plan",
    "SyncPlan": "fediseer_sync.plan",
    "TrustDecision": "fediseer_sync.models",
    "TrustResult": "fediseer_sync.models",
    "Provenance": "fediseer_sync.models",
    "SourceSnapshot": "fediseer_sync.models",
    "InstanceEntry": "fediseer_sync.models",
    "FediseerError": "fediseer_sync.errors",
    "FediseerUnavailable": "fediseer_sync.errors",
    "FediseerBadResponse": "fediseer_sync.errors",
    "FediseerRateLimited": "fediseer_sync.errors",
    "FediseerRefused": "fediseer_sync.errors",
    "FediseerBadRequest": "fediseer_sync.errors",
    "FediseerAuthError": "fediseer_sync.errors",
    "FediseerForbidden": "fediseer_sync.errors",
    "FediseerNotFound": "fediseer_sync.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fediseer_sync' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
