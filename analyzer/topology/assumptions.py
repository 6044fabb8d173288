"""What a call's verdict rests on (issue 15): the assumptions behind each participant's location, the
confidence they allow, and what to add to the network profile so the verdict rests on facts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .profile import ORIGINS
from .zones import ZoneMap

if TYPE_CHECKING:
    from .calls import Call


def rests_on(c: Call, zm: ZoneMap) -> tuple[list[str], str, str]:
    """What a call's verdict rests on: (assumptions, confidence, what to add to the profile). The
    confidence is the weakest origin among the participants' locations: 'profile', 'inferred' (from the
    capture, with its frames) or 'default ranges' (a private address taken as customer by its range)."""
    out: list[str] = []
    site = zm.sites.customer
    if zm.profile.source == "defaults":
        if site is not None:
            what = f"the capture host's site {site.describe()}" if site.file >= 0 else zm.sites.rule
            out.append(
                f"no network profile: customer network = {what}, inferred from frames "
                f"{', '.join(map(str, site.frames()))}"
            )
        else:
            out.append(
                "no network profile, and no capture host on a customer site: private and CGNAT ranges "
                "taken as the customer network"
            )
    else:
        out.append(f"network profile {zm.profile.source}")
    for agent, (where, rule) in c.locations.items():
        origin = c.origins.get(agent, "default")
        if origin != "profile":
            out.append(f"{agent} {where} ({'default ranges' if origin == 'default' else origin}): {rule}")
    found = [c.origins.get(k, "default") for k in c.locations] or ["inferred"]
    worst = max(found, key=ORIGINS.index)
    confidence = "default ranges" if worst == "default" else worst
    hint = ""
    if confidence != "profile":
        if site is not None and site.private:
            nets = sorted({".".join(a.split(".")[:3]) + ".0/24" for a in site.private if a.count(".") == 3})
            hint = f"[customer] networks = {json.dumps(nets)}" + (
                f", egress = {json.dumps(sorted(site.public))}" if site.public else ""
            )
        elif site is not None:
            hint = f"[customer] egress = {json.dumps([site.host])} and the customer's internal networks"
        else:
            hint = "[customer] networks and egress (the customer's prefixes and NAT addresses)"
        hint += "; replace_defaults = true"
        cloud = sorted(
            {
                rule.split(" ", 1)[0]
                for k, (where, rule) in c.locations.items()
                if where == "cloud" and c.origins.get(k) == "default"
            }
        )
        if cloud:  # a media processor or trunk known only by the published ranges
            hint += f"; [cloud] media = {json.dumps(cloud)}"
        hint = f"to rest the verdict on facts, add to the network profile: {hint}"
    return out, confidence, hint
