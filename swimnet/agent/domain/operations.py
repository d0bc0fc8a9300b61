"""Every operation the agent offers, in one bundle: what a front end (the HTTP control API
today, the Docker plugin protocol next) is given.

Rules: built once over one `OverlayAgent` and one `KeysAdmin`; front ends call these
methods with typed arguments and translate `OperationError` kinds, nothing more.
"""

from __future__ import annotations

import attrs

from swimnet.agent.domain.diagnosis import Diagnosis
from swimnet.agent.domain.dns_ops import Dns
from swimnet.agent.domain.endpoints import Endpoints
from swimnet.agent.domain.keys import KeysAdmin
from swimnet.agent.domain.networks import Networks
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.services import Services


@attrs.frozen
class Operations:
    overlay: OverlayAgent
    networks: Networks
    endpoints: Endpoints
    services: Services
    keys: KeysAdmin
    diagnosis: Diagnosis
    dns: Dns

    @classmethod
    def over(cls, overlay: OverlayAgent, keys: KeysAdmin) -> Operations:
        return cls(
            overlay,
            Networks(overlay),
            Endpoints(overlay),
            Services(overlay),
            keys,
            Diagnosis(overlay),
            Dns(overlay),
        )

    @property
    def ready(self) -> bool:
        """The agent has started (joined or given up joining): changes are accepted."""
        return self.overlay.started
