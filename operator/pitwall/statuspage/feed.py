"""The incident feed (Atom 1.0, ``/feed.atom``): one entry per incident of the public history.

Built with ElementTree from the same public model as the page and the JSON (never from the
objects), so the feed carries nothing the page does not show, and every text is escaped by the
XML serialiser. An entry's ``updated`` moves with each update and with the resolution, so feed
readers show the incident again when there is news.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

ATOM = "http://www.w3.org/2005/Atom"


def atom(model: dict, *, title: str, base_url: str) -> str:
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    history = model.get("history") or []
    _text(feed, "title", f"{title}: incidents")
    _text(feed, "id", f"{base_url}/feed.atom")
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=f"{base_url}/feed.atom")
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=f"{base_url}/")
    _text(feed, "updated", max((_updated(i) for i in history), default=model["generatedAt"]))
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", title)
    for incident in history:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", f"{base_url}/api/v1/incidents#{incident['id']}")
        state = "Resolved" if incident["resolved"] else incident["statusLabel"]
        _text(entry, "title", f"[{state}] {incident['title']}")
        _text(entry, "published", incident["startedAt"])
        _text(entry, "updated", _updated(incident))
        anchor = (
            f"i-{incident['id']}"
            if not incident["resolved"]
            else f"i-{incident['products'][0]['id']}-{incident['id']}"
        )
        ET.SubElement(
            entry, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=f"{base_url}/#{anchor}"
        )
        for product in incident["products"]:
            ET.SubElement(entry, f"{{{ATOM}}}category", term=product["id"], label=product["displayName"])
        _text(entry, "summary", incident.get("cause") or incident["impactLabel"])
        _text(entry, "content", _content(incident)).set("type", "text")
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"


def _content(incident: dict) -> str:
    products = "; ".join(
        f"{p['displayName']} {', '.join(p['versions'])}".strip() for p in incident["products"]
    )
    lines = [f"{incident['impactLabel']}: {products}", f"Started: {incident['startedAt']}"]
    if incident["resolved"]:
        lines.append(f"Resolved: {incident['resolvedAt']} (after {incident['duration']})")
    if incident.get("cause"):
        lines.append(f"Cause: {incident['cause']}")
    if incident.get("resolution"):
        lines.append(f"Resolution: {incident['resolution']}")
    for update in incident["updates"]:
        lines.append(f"{update['statusLabel']} ({update.get('at') or 'time unknown'}): {update['message']}")
    if incident.get("postIncidentReport"):
        lines.append(f"Post-incident report: {incident['postIncidentReport']}")
    return "\n".join(lines)


def _updated(incident: dict) -> str:
    moments = [incident["startedAt"], incident.get("resolvedAt"), *(u.get("at") for u in incident["updates"])]
    return str(max(m for m in moments if m))


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}")
    element.text = value
    return element
