"""The worker's operator settings, handed to each operation when it starts.

Settings live in the worker's configuration, not in workflow input: a changed `--ready-deadline` reaches
every group at its next operation, and the value an operation used is in its history.
"""

from __future__ import annotations

from temporalio import activity

from rbg_flows.messages import Timeouts


class SettingsActivities:
    def __init__(self, timeouts: Timeouts):
        self.timeouts = timeouts

    @activity.defn(name="settings")
    async def settings(self) -> Timeouts:
        return self.timeouts
