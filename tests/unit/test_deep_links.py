"""Deep links the app opens for portal-owned features."""

from __future__ import annotations

from portal_sync.admin.deep_links import render

ORG = "775d1e31-77f8-5a63-b3c0-05e86b76b2f4"


def test_context_is_appended_encoded_to_a_plain_url() -> None:
    assert render(
        "https://minside.hlf.no/kurs", org_id=ORG, feature="courses", contact_id=None
    ) == (f"https://minside.hlf.no/kurs?org_id={ORG}&feature=courses")


def test_placeholders_are_filled_encoded_and_existing_query_is_kept() -> None:
    link = render(
        "https://minside.hlf.no/p/{contact_id}?lang=nb&org={org_id}",
        org_id=ORG,
        feature="profile page",
        contact_id="a/b c",
    )
    assert link == f"https://minside.hlf.no/p/a%2Fb%20c?lang=nb&org={ORG}&feature=profile+page"


def test_the_contact_id_is_only_sent_where_the_template_asks_for_it() -> None:
    link = render("https://minside.hlf.no/", org_id=ORG, feature="events", contact_id="c-1")
    assert "c-1" not in link
