"""Scheduled campaign posts: config in `fedibot.campaign_config`, runs in `manager`."""

from fedibot.campaigns.manager import CampaignManager, OutputWithheld, RunOutcome
from fedibot.campaigns.store import CampaignStore, RunRecord, RunStatus

__all__ = [
    "CampaignManager",
    "CampaignStore",
    "OutputWithheld",
    "RunOutcome",
    "RunRecord",
    "RunStatus",
]
