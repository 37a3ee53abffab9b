"""`portal-sync`: the admin API from a terminal, for administrators and on-call.

Talks to the admin API over HTTP only (never to the database), so the same commands work against
`make run` and against a deployment. Without options it reads `.local/run.json` from the current
directory (what `make run` writes), so `portal-sync status` just works next to `make run`.

Tokens and webhook secrets given to it are never printed; the only secret it ever shows is the
one `rotate-secret` receives, once, because that is the only moment it can be seen.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote, urlsplit

import httpx
import typer
from portal_sync.inbound.signature import sign
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

RUN_FILE = Path(".local") / "run.json"
ADMIN_API = "/functions/v1/admin-api"
WEBHOOK_PATH = "/functions/v1/portal-webhook"
TIMEOUT_SECONDS = 30.0

app = typer.Typer(
    name="portal-sync",
    help="Portal sync administration: sync status and log, reprocessing, imports and "
    "reconciliations, webhook secrets and health, and signed test webhooks. Talks to the admin "
    "API over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback with locals would print the bearer token.
    pretty_exceptions_show_locals=False,
)
out = Console(soft_wrap=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


# -- configuration -----------------------------------------------------------------------------


@dataclass
class Settings:
    """Options as given; anything missing comes from `.local/run.json` when it is needed."""

    base_url: str | None
    token: str | None
    org: str | None
    _run: dict[str, Any] | None = None

    def run_info(self) -> dict[str, Any]:
        if self._run is None:
            self._run = _read_run_file()
        return self._run

    def require(self, given: str | None, key: str, what: str, hint: str) -> str:
        value = given or self.run_info().get(key)
        if not value:
            fail(f"No {what}: {hint}, or run this next to `make run` (it writes {RUN_FILE}).", 2)
        return str(value)

    def resolved_base_url(self) -> str:
        url = self.require(
            self.base_url, "base_url", "base URL", "pass --base-url or set PORTAL_SYNC_BASE_URL"
        )
        return url.rstrip("/")

    def resolved_token(self) -> str:
        return self.require(
            self.token, "admin_token", "token", "pass --token or set PORTAL_SYNC_TOKEN"
        )

    def resolved_org(self) -> str:
        return self.require(self.org, "org_id", "organisation", "pass --org or set PORTAL_SYNC_ORG")


def _read_run_file() -> dict[str, Any]:
    path = Path.cwd() / RUN_FILE
    if not path.exists():
        return {}
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"{RUN_FILE} cannot be read: {exc.__class__.__name__}", 2)
    return found if isinstance(found, dict) else {}


def settings(ctx: typer.Context) -> Settings:
    found = ctx.find_object(Settings)
    assert found is not None, "the callback sets the settings"
    return found


@app.callback()
def main(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="PORTAL_SYNC_BASE_URL",
            help="Where the functions are served, e.g. http://127.0.0.1:8000 "
            "(default: base_url of .local/run.json)",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="PORTAL_SYNC_TOKEN",
            help="Supabase access token of an administrator "
            "(default: admin_token of .local/run.json)",
            show_default=False,
        ),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            envvar="PORTAL_SYNC_ORG",
            help="Organisation id (default: org_id of .local/run.json)",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(base_url=base_url, token=token, org=org)


# -- output and errors -------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(Text(message, style="red"))
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def cell(value: Any) -> Text:
    """A table cell; API text is never read as rich markup."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no", style="red" if value else "")
    return Text(str(value))


def when(value: Any) -> Any:
    """An API timestamp to the second, in UTC (the JSON output keeps it exact)."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo else "")


def status_cell(status: str) -> Text:
    return Text(status, style={"error": "red", "success": "green", "skipped": "yellow"}.get(status))


def field_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else cell(value))
    return table


def report_http_error(response: httpx.Response) -> NoReturn:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        lines = [f"Error {body.get('code', response.status_code)}: {body['message']}"]
        for item in body.get("errors") or []:
            if isinstance(item, dict):
                lines.append(f"  - {item.get('path', '?')}: {item.get('message', '')}")
            else:
                lines.append(f"  - {item}")
        fail("\n".join(lines))
    text = response.text.strip()[:300]
    fail(f"Error {response.status_code} {response.reason_phrase}" + (f": {text}" if text else ""))


def connection_failed(url: str, exc: httpx.HTTPError) -> NoReturn:
    fail(
        f"Cannot reach {url} ({exc.__class__.__name__}): is `make run` running "
        "(or is --base-url right)?"
    )


def _origin(url: str) -> str:
    """The scheme and host of a URL, for messages (never a query string)."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


# -- the admin API -----------------------------------------------------------------------------


def admin_call(
    ctx: typer.Context,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """Calls `/functions/v1/admin-api/orgs/{org}{path}`; returns the JSON answer or exits 1."""
    config = settings(ctx)
    base_url = config.resolved_base_url()
    token = config.resolved_token()
    org = quote(config.resolved_org(), safe="")
    url = f"{base_url}{ADMIN_API}/orgs/{org}{path}"
    try:
        response = httpx.request(
            method,
            url,
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
            params={k: v for k, v in (params or {}).items() if v is not None},
            json=body,
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        connection_failed(_origin(base_url), exc)
    if response.is_error:
        report_http_error(response)
    try:
        return response.json()
    except ValueError:
        fail(f"The API answered {response.status_code} without JSON")


JsonFlag = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer")]


@app.command()
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Sync status: last processed and successful event, pending and failed counts."""
    body = admin_call(ctx, "GET", "/sync/status")
    if as_json:
        print_json(body)
        return
    pending = body.get("pending")
    failed = body.get("failed", 0)
    rows: list[tuple[str, Any]] = [
        ("organisation", body.get("organization_id")),
        ("last processed", when(body.get("last_processed_at"))),
        ("last success", when(body.get("last_success_at"))),
        # The organisation's accepted events not applied yet (an older server: unknown).
        ("pending", pending if pending is not None else Text("unknown", style="dim")),
        ("failed", Text(str(failed), style="red" if failed else "")),
    ]
    last_24h = body.get("last_24h") or {}
    for name in sorted(set(last_24h) | {"success", "error", "skipped"}):
        rows.append((f"last 24 h: {name}", last_24h.get(name, 0)))
    rows += run_rows("import", body.get("full_import"))
    rows += run_rows("reconciliation", body.get("reconciliation"))
    rows.append(("next reconciliation", when(body.get("next_reconciliation_at"))))
    rows += website_rows(body.get("website_visibility"))
    out.print(field_table("Sync status", rows))


# -- imports and reconciliations ------------------------------------------------------------------

WaitFlag = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Follow the run's progress until it ends")
]


def start_run(ctx: typer.Context, kind: str, wait: bool, as_json: bool) -> None:
    """Starts an import or reconciliation and follows sync/status with a progress bar; exits 1
    when the run fails."""
    path = "/sync/import" if kind == "import" else "/sync/reconcile"
    run = admin_call(ctx, "POST", path)
    if wait:
        run = follow(ctx, run)
    if as_json:
        print_json(run)
    else:
        out.print(field_table(f"{kind.capitalize()} {run.get('id')}", run_rows(kind, run)))
    if run.get("phase") == "failed":
        raise typer.Exit(1)


def follow(ctx: typer.Context, run: dict[str, Any], interval: float = 0.5) -> dict[str, Any]:
    """Polls sync/status until the run ends. Dynamics gives no row count up front, so the bar
    counts rows read (pulsing) and names the table being read."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    key = "full_import" if run.get("kind") == "import" else "reconciliation"
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows read"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task(f"{run.get('kind')}", total=None, detail="")
        while True:
            current = admin_call(ctx, "GET", "/sync/status").get(key) or run
            if current.get("id") == run.get("id"):
                run = current
            table = run.get("current_table") or "finishing"
            progress.update(
                task,
                completed=run.get("rows_read", 0),
                description=f"{run.get('kind')}: {table}",
                detail=f"{run.get('rows_changed', 0):,} changed, {run.get('rows_failed', 0):,} failed",
            )
            if run.get("phase") != "running":
                return run
            time.sleep(interval)


@app.command("import")
def import_members(ctx: typer.Context, wait: WaitFlag = True, as_json: JsonFlag = False) -> None:
    """Starts a full import of the organisation's members from Dynamics and follows it."""
    start_run(ctx, "import", wait, as_json)


@app.command()
def reconcile(ctx: typer.Context, wait: WaitFlag = True, as_json: JsonFlag = False) -> None:
    """Starts a reconciliation (the changes since the last read) and follows it."""
    start_run(ctx, "reconcile", wait, as_json)


def run_rows(label: str, run: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The status rows of an import or reconciliation."""
    if not run:
        return [(label, Text("never ran", style="dim"))]
    phase = run.get("phase", "")
    style = {"failed": "red", "running": "yellow"}.get(phase, "")
    rows: list[tuple[str, Any]] = [
        (label, Text(f"{phase} ({run.get('trigger')})", style=style)),
        (
            f"{label}: rows",
            f"{run.get('rows_read', 0):,} read, {run.get('rows_changed', 0):,} changed, "
            f"{run.get('rows_unchanged', 0):,} unchanged, {run.get('rows_failed', 0):,} failed",
        ),
        (f"{label}: started", when(run.get("started_at"))),
        (f"{label}: finished", when(run.get("finished_at"))),
    ]
    if run.get("kind") == "reconcile":
        rows.insert(2, (f"{label}: drift (lost webhooks)", run.get("rows_drift", 0)))
    if run.get("error"):
        rows.append((f"{label}: error", Text(str(run["error"]), style="red")))
    return rows


def website_rows(visibility: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The status rows of the organisation's mentors on the public website."""
    if not visibility:
        return []
    mentors = visibility.get("mentors") or {}
    failed = mentors.get("failed", 0)
    rows: list[tuple[str, Any]] = [
        (
            "website: mentors",
            Text(
                f"{mentors.get('in_sync', 0):,} in sync, {mentors.get('pending', 0):,} pending, "
                f"{failed:,} failed",
                style="red" if failed else "",
            ),
        )
    ]
    outage = visibility.get("outage")
    if outage:
        rows.append(
            (
                "website: outage",
                Text(
                    f"since {when(outage.get('started_at'))}, "
                    f"{outage.get('mentors_affected', 0):,} mentors: {outage.get('cause')}",
                    style="red",
                ),
            )
        )
    read_back = visibility.get("read_back")
    if read_back:
        rows.append(
            (
                "website: read-back",
                f"{read_back.get('mentors_read', 0):,} read, "
                f"{read_back.get('hand_edits_repaired', 0):,} hand edits repaired "
                f"(last pass finished {when(read_back.get('last_pass_finished_at')) or 'not yet'})",
            )
        )
    return rows


class EventStatus(StrEnum):
    error = "error"
    success = "success"
    skipped = "skipped"


@app.command()
def events(
    ctx: typer.Context,
    status: Annotated[
        EventStatus | None, typer.Option("--status", help="Only events with this status")
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only this event type, e.g. membership.created")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="Page size")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next cursor a previous page printed")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The sync log, newest first."""
    body = admin_call(
        ctx,
        "GET",
        "/sync/events",
        params={
            "status": status.value if status else None,
            "type": event_type,
            "limit": limit,
            "cursor": cursor,
        },
    )
    if as_json:
        print_json(body)
        return
    items = body.get("items") or []
    if not items:
        out.print("No events.")
    else:
        show_events(items)
        reprocessable = sum(1 for item in items if item.get("can_reprocess"))
        if reprocessable:
            out.print(
                f"{reprocessable} can be reprocessed: portal-sync reprocess <id>", style="yellow"
            )
    if body.get("next_cursor"):
        typer.echo(f"next cursor: {body['next_cursor']}")


# Below this width the log is a list: six columns of which one is a 36-character id do not fit.
WIDE_TABLE = 140


def show_events(items: list[dict[str, Any]]) -> None:
    if out.width >= WIDE_TABLE:
        table = Table(title="Sync log (newest first)", title_justify="left")
        table.add_column("received_at", no_wrap=True)
        table.add_column("event_type", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("message", overflow="fold", ratio=1)
        table.add_column("attempts", justify="right", no_wrap=True)
        table.add_column("id", no_wrap=True, min_width=36)
        for item in items:
            table.add_row(
                cell(when(item.get("received_at"))),
                cell(item.get("event_type")),
                status_cell(str(item.get("status"))),
                cell(item.get("message")),
                cell(item.get("attempts")),
                cell(item.get("id")),
            )
        out.print(table)
        return
    out.print(Text("Sync log (newest first)", style="italic"))
    for item in items:
        line = Text.assemble(
            (str(when(item.get("received_at"))), ""),
            "  ",
            status_cell(str(item.get("status"))),
            "  ",
            (str(item.get("event_type")), "bold"),
            f"  attempts {item.get('attempts')}  ",
            (str(item.get("id")), "cyan"),
        )
        out.print(line, soft_wrap=True)
        out.print(Padding(cell(item.get("message")), (0, 0, 0, 4), expand=False))


@app.command()
def reprocess(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="The log entry's id (the id column of events)")],
) -> None:
    """Re-queue an event that ended in error (its kept original message)."""
    body = admin_call(ctx, "POST", f"/sync/events/{quote(event_id, safe='')}/reprocess")
    out.print(
        Text(f"Queued {body.get('event_id')} for reprocessing.", style="green"),
    )
    removed = body.get("removed_from_dead_letter_queue") or 0
    if removed:
        out.print(
            f"Removed {removed} cop{'y' if removed == 1 else 'ies'} from the dead-letter queue."
        )
    out.print("Follow it with: portal-sync events")


@app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    grace_hours: Annotated[
        float,
        typer.Option(
            "--grace-hours",
            min=0,
            max=336,
            help="How long the previous secret stays valid (0 retires it at once)",
        ),
    ] = 24,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before retiring the secret at once")
    ] = False,
) -> None:
    """Rotate the webhook secret; the new one is shown once."""
    if grace_hours == 0 and not yes:
        typer.confirm(
            "With --grace-hours 0 the current secret stops verifying now; "
            "webhooks signed with it will be refused. Continue?",
            abort=True,
        )
    body = admin_call(
        ctx,
        "POST",
        "/integration/webhook-secret",
        body={"grace_period_hours": grace_hours},
    )
    out.print(
        Text(
            "New webhook secret. It is shown only now: store it in Dynamics (or the relay) "
            "before closing this terminal.",
            style="bold yellow",
        )
    )
    # Plain, on a line of its own, so that it copies cleanly.
    typer.echo(body["secret"])
    rows: list[tuple[str, Any]] = [
        ("fingerprint", body.get("fingerprint")),
        ("signature mode", body.get("signature_mode")),
    ]
    if body.get("header_name"):
        rows.append(("header name", body.get("header_name")))
    previous = body.get("previous_valid_until")
    rows.append(
        (
            "previous valid until",
            when(previous) if previous else Text("retired now", style="red"),
        )
    )
    out.print(field_table("Rotation", rows))


@app.command("test-secret")
def test_secret(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Have the API send a signed test delivery to the organisation's endpoint.

    Exit code 1 when it did not verify.
    """
    body = admin_call(ctx, "POST", "/integration/webhook-secret/test")
    verified = bool(body.get("verified"))
    if as_json:
        print_json(body)
    else:
        out.print(
            Text("verified" if verified else "NOT verified", style="green" if verified else "red")
        )
        out.print(
            field_table(
                "Secret test",
                [
                    ("endpoint", body.get("endpoint")),
                    ("status code", body.get("status_code")),
                    ("message", body.get("message")),
                ],
            )
        )
    if not verified:
        raise typer.Exit(1)


@app.command()
def health(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Webhook endpoint health (global administrators): counts, rejections, outage."""
    body = admin_call(ctx, "GET", "/webhook-health")
    if as_json:
        print_json(body)
        return
    out.print(
        field_table(
            "Endpoint",
            [
                ("url", body.get("endpoint_url")),
                ("signature mode", body.get("signature_mode")),
                ("replay protection", Text("yes" if body.get("replay_protection") else "no")),
                ("note", body.get("note")),
            ],
        )
    )
    out.print(
        field_table(
            "Last 24 h",
            [
                ("received", body.get("received_24h")),
                ("accepted", body.get("accepted_24h")),
                ("duplicate", body.get("duplicate_24h")),
                ("rejected", body.get("rejected_24h")),
            ],
        )
    )
    reasons = body.get("rejected_by_reason_24h") or {}
    if reasons:
        table = Table(title="Rejections by reason (24 h)", title_justify="left")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            table.add_row(cell(reason), cell(count))
        out.print(table)
    hour = body.get("last_hour") or {}
    out.print(
        field_table(
            "Last hour",
            [
                ("received", hour.get("received")),
                ("rejected", hour.get("rejected")),
                ("rejection rate", f"{hour.get('rate_percent', 0):g} %"),
                ("alert (above 10 %)", hour.get("alert")),
                ("minimum volume", hour.get("minimum_volume")),
            ],
        )
    )
    outage = body.get("outage") or {}
    out.print(
        field_table(
            "Outage",
            [
                ("alert", outage.get("alert")),
                ("last healthy", when(outage.get("last_healthy_at"))),
                ("reason", outage.get("reason")),
            ],
        )
    )


# -- sending webhooks --------------------------------------------------------------------------


# The demo environment's membership roles (Dynamics choice values; DEFAULT_FIELD_MAPPING).
SAMPLE_ROLE_VALUES = {
    "member": 100000000,
    "peer_mentor": 100000001,
    "coordinator": 100000002,
    "admin": 100000003,
}


class Sample(StrEnum):
    membership_created = "membership.created"
    membership_role_updated = "membership.role_updated"
    membership_deactivated = "membership.deactivated"
    course_enrolled = "course.enrolled"


def sample_event(
    kind: Sample,
    contact_id: str | None,
    role: str | None,
    course_id: str | None,
    course_name: str | None,
) -> bytes:
    """A portal event (docs/inbound.md) that happened now."""
    payload: dict[str, Any] = {
        "type": kind.value,
        "occurred_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "member": {
            "dynamics_contact_id": contact_id or str(uuid.uuid4()),
            "first_name": "Kari",
            "last_name": "Nordmann",
            "email": "kari.nordmann@example.org",
        },
    }
    if kind is Sample.membership_created:
        payload["role"] = role or "member"
    elif kind is Sample.membership_role_updated:
        payload["role"] = role or "coordinator"
    elif role:
        payload["role"] = role
    if kind is Sample.course_enrolled:
        payload["course"] = {
            "dynamics_course_id": course_id or str(uuid.uuid4()),
            "name": course_name or "Likeperson basic course",
        }
    return json.dumps(payload).encode()


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def mirror_in_standin(standin_url: str, event: dict[str, Any]) -> None:
    """Under `make run`, the sample's member exists in the Dynamics stand-in as well (contact,
    membership or enrolment), as a member announced by HLF's portal exists in Dynamics: later
    changes sent to Dynamics for them then succeed."""
    try:
        member = event["member"]
        contact_id = member["dynamics_contact_id"]
        name = f"{member['first_name']} {member['last_name']}"
        contact_lookup = {"hlf_contactid": ["contact", contact_id, name]}
        rows: list[tuple[str, str, dict[str, Any]]] = [
            (
                "contacts",
                contact_id,
                {
                    "columns": {
                        "firstname": member["first_name"],
                        "lastname": member["last_name"],
                        "emailaddress1": member["email"],
                    }
                },
            )
        ]
        membership: dict[str, Any] = {}
        if "role" in event and event["role"] in SAMPLE_ROLE_VALUES:
            membership["hlf_role"] = SAMPLE_ROLE_VALUES[event["role"]]
        if event["type"] == Sample.membership_deactivated.value:
            membership |= {"statecode": 1, "statuscode": 2}
        elif event["type"] != Sample.course_enrolled.value:
            membership |= {"statecode": 0, "statuscode": 1}
        if membership:
            rows.append(
                (
                    "hlf_memberships",
                    str(uuid.uuid5(uuid.UUID(contact_id), "membership")),
                    {"columns": membership, "lookups": contact_lookup},
                )
            )
        if "course" in event:
            course = event["course"]
            rows.append(
                (
                    "hlf_courseenrollments",
                    str(uuid.uuid5(uuid.UUID(course["dynamics_course_id"]), contact_id)),
                    {
                        "columns": {"statecode": 0},
                        "lookups": {
                            **contact_lookup,
                            "hlf_courseid": [
                                "hlf_course",
                                course["dynamics_course_id"],
                                course["name"],
                            ],
                        },
                    },
                )
            )
        for entity_set, row_id, spec in rows:
            answer = httpx.put(
                f"{standin_url}/_standin/rows/{entity_set}/{row_id}",
                json=spec,
                timeout=TIMEOUT_SECONDS,
            )
            answer.raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        # The webhook is what is being tried: the stand-in row is a convenience.
        err.print(
            Text(f"The Dynamics stand-in did not take the sample's rows: {exc}", style="yellow")
        )
        return
    err.print(Text(f"Dynamics stand-in: contact {contact_id} and its rows written", style="dim"))


def _header_key(value: str) -> tuple[str, str]:
    name, separator, key = value.partition("=")
    if not separator or not name.strip() or not key:
        raise typer.BadParameter(
            "use NAME=VALUE, e.g. x-hlf-portal-key=...", param_hint="--header-key"
        )
    return name.strip(), key


@app.command()
def send(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Webhook endpoint (default: base URL + /functions/v1/portal-webhook/<source>)",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            envvar="PORTAL_SYNC_SOURCE",
            help="Source id for the default URL (default: source_id of .local/run.json)",
            show_default=False,
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="PORTAL_SYNC_WEBHOOK_SECRET",
            help="whsec_... secret to sign with (default: webhook_secret of .local/run.json)",
            show_default=False,
        ),
    ] = None,
    header_key: Annotated[
        str | None,
        typer.Option(
            "--header-key",
            envvar="PORTAL_SYNC_HEADER_KEY",
            help="NAME=VALUE: send Dataverse's static header instead of signing",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Send this file's bytes as they are (e.g. a Dataverse capture)",
        ),
    ] = None,
    sample: Annotated[
        Sample | None,
        typer.Option("--sample", help="Build a portal event of this type (the default)"),
    ] = None,
    contact_id: Annotated[
        str | None,
        typer.Option("--contact-id", help="Sample: the member's Dynamics contact id (random)"),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="Sample: the role (member; coordinator for role_updated)"),
    ] = None,
    course_id: Annotated[
        str | None, typer.Option("--course-id", help="Sample: the course id (random)")
    ] = None,
    course_name: Annotated[
        str | None, typer.Option("--course-name", help="Sample: the course name")
    ] = None,
) -> None:
    """Sign and send an event to a webhook endpoint; prints the answer.

    Standard Webhooks signing unless --header-key is given. Exit code 1 on a non-2xx answer.
    """
    if file is not None and sample is not None:
        raise typer.BadParameter("give either --file or --sample, not both", param_hint="--file")
    if file is not None and any(v is not None for v in (contact_id, role, course_id, course_name)):
        raise typer.BadParameter(
            "--contact-id, --role, --course-id and --course-name build a sample; "
            "they do not change a --file",
            param_hint="--file",
        )
    config = settings(ctx)
    if url is None:
        source_id = config.require(
            source, "source_id", "source id", "pass --url or --source (PORTAL_SYNC_SOURCE)"
        )
        url = f"{config.resolved_base_url()}{WEBHOOK_PATH}/{quote(source_id, safe='')}"

    if file is not None:
        body = file.read_bytes()
    else:
        body = sample_event(
            sample or Sample.membership_created, contact_id, role, course_id, course_name
        )
        standin = config.run_info().get("dynamics_sandbox_url")
        if standin and _is_loopback(standin) and url.startswith(config.resolved_base_url()):
            mirror_in_standin(standin, json.loads(body))

    headers = {"content-type": "application/json"}
    if header_key is not None:
        name, key = _header_key(header_key)
        headers[name] = key
        described = f"header {name}"
    else:
        signing_secret = config.require(
            secret,
            "webhook_secret",
            "webhook secret",
            "pass --secret (PORTAL_SYNC_WEBHOOK_SECRET) or --header-key",
        )
        webhook_id = f"msg_{uuid.uuid4().hex}"
        timestamp = int(time.time())
        headers |= {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(signing_secret, webhook_id, timestamp, body),
        }
        described = f"signed, webhook-id {webhook_id}"

    err.print(Text(f"POST {url} ({len(body)} bytes, {described})", style="dim"))
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        connection_failed(_origin(url), exc)
    ok = response.is_success
    out.print(
        Text(
            f"{response.status_code} {response.reason_phrase}",
            style="green" if ok else "red",
        )
    )
    try:
        print_json(response.json())
    except ValueError:
        if response.text:
            typer.echo(response.text)
    if not ok:
        if response.status_code == 401:
            err.print(
                Text(
                    "Refused: check the source id and the secret (or header key); "
                    "the endpoint does not say which is wrong.",
                    style="red",
                )
            )
        raise typer.Exit(1)


@app.command("lint-database")
def lint_database(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="DATABASE_URL",
            help="The database to check (a Supabase project's direct connection)",
        ),
    ],
    schema: Annotated[
        list[str] | None,
        typer.Option(help="A schema the Data API exposes (repeatable; default public)"),
    ] = None,
) -> None:
    """Supabase's database linter (splinter's checks) on a database: what the Security and
    Performance Advisors would report. Exit code 1 on any ERROR or WARN finding."""
    import psycopg

    from portal_sync_dev.database.lint import DEFAULT_EXPOSED_SCHEMAS, format_report, run

    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            report = run(conn, tuple(schema or DEFAULT_EXPOSED_SCHEMAS))
    except psycopg.OperationalError as exc:
        fail(f"Could not connect to the database: {str(exc).splitlines()[0]}")
    typer.echo(format_report(report))
    if report.failing:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
