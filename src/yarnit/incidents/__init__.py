"""Incident response: alerts open incidents, triage lists what changed, policies mitigate, postmortems write
themselves (book ch. 11).

* :mod:`.models` — :class:`Incident`, its timeline :class:`Event` records, severities, states, roles, phases;
* :mod:`.store` — :class:`IncidentStore`, one JSON file under ``$YARNIT_HOME/incidents/``, atomic and locked;
* :mod:`.intake` — :func:`process_alerts`, called by the monitor after each run: open/attach, phases, impact,
  mitigation policies; :func:`mitigate` runs an action by hand;
* :mod:`.triage` — the changes that preceded an outage, ranked by lineage distance and time;
* :mod:`.config` — ``$YARNIT_HOME/incidents.yaml``: grouping, auto-resolution, mitigation policies;
* :mod:`.postmortem` — the blameless Markdown postmortem.
"""

from .config import (
           DEFAULT_POLICIES,
           IncidentConfig,
           MitigationPolicy,
           load_config,
           parse_config,
)
from .intake import mitigate, outage_start, process_alerts, run_action
from .models import PHASES, ROLES, SEVERITIES, STATES, Event, Incident, IncidentNotFound
from .postmortem import durations, render_postmortem
from .store import IncidentStore, incidents_path
from .triage import triage

__all__ = ["DEFAULT_POLICIES", "Event", "Incident", "IncidentConfig", "IncidentNotFound", "IncidentStore",
           "MitigationPolicy", "PHASES", "ROLES", "SEVERITIES", "STATES", "durations", "incidents_path",
           "load_config", "mitigate", "outage_start", "parse_config", "process_alerts", "render_postmortem",
           "run_action", "triage"]
