"""``/webhooks``: an account's webhooks (spec/events.md), the admin API's.

``admin`` scope, the People API's credential contract and error shape. A client sees
and changes only the webhooks of the accounts it reaches. The core (``core/webhooks.py``)
does everything; deliveries are ``core/deliverer.py``'s. The reads and removals work in
the unit of work ``Admin`` authenticates on (a writing one: one connection a request);
POST and PATCH resolve the URL's host before they open theirs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request, Response
from pydantic import Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.api.deps import ReadConnection, WriteConnection, authenticated_briefly, services
from roster.api.events import TypeFilter, event_json
from roster.api.fields import STORABLE, AccountId, NotNull, Rules, Timestamp
from roster.api.openapi import error_responses
from roster.api.people.contract import (
    PEOPLE_CREDENTIALS,
    Admin,
    AdminReader,
    QueryParameters,
    people_router,
)
from roster.api.people.models import Body, CamelModel, optional_timestamp, timestamp
from roster.core.accounts import require_account
from roster.core.auth import Principal
from roster.core.deliverer import Deliverer
from roster.core.fields import WEBHOOK
from roster.core.webhooks import (
    DEFAULT_GRACE,
    MAX_GRACE,
    CheckedUrl,
    Delivery,
    Webhook,
    WithSecret,
    checked_url,
    delete_webhook,
    get_webhook,
    list_deliveries,
    list_webhooks,
    register_webhook,
    replay,
    rotate_secret,
    update_webhook,
)
from roster.db.engine import unit_of_work
from roster.settings import Settings

router = people_router("Admin API: webhooks")
#: A webhook named in a path: any storable text of an id's length (one that is no
#: webhook's is not found).
WebhookId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=WEBHOOK["id"].max_length),
    STORABLE,
    Path(alias="webhookId", description="The webhook's id (`wh_...`)."),
]
Url = Annotated[
    str,
    Rules(WEBHOOK["url"]),
    Field(description="Where to POST the events: an https:// URL on a public address."),
]
Description = Annotated[str, Rules(WEBHOOK["description"])]
Types = Annotated[
    list[TypeFilter],
    Field(
        max_length=100,
        description="The event types to deliver (`persona.*`: all of one resource); "
        "empty or left out: every event of the account.",
    ),
]


class WebhookCreate(Body):
    account_id: AccountId = Field(description="The account whose events to deliver.")
    url: Url
    types: Annotated[Types, Field(default_factory=list)]
    description: Description | None = None


class WebhookUpdate(Body):
    url: Annotated[Url | None, NotNull()] = None
    types: Annotated[Types | None, NotNull()] = None
    description: Description | None = None
    state: Annotated[Literal["active", "disabled"] | None, NotNull()] = Field(
        None,
        description="`active` re-enables a failing or disabled webhook (delivery resumes "
        "where it stopped); `disabled` pauses it.",
    )


class WebhookOut(CamelModel):
    id: str
    account_id: str
    url: str
    types: list[str]
    description: str | None
    state: Literal["active", "failing", "disabled"]
    failing_since: Timestamp | None = Field(description="When it started failing.")
    delivered_through: int = Field(
        description="The last event delivered (or passed over by `types`): delivery goes on "
        "after it."
    )
    attempts: int = Field(description="Failed attempts at the next event.")
    next_attempt_at: Timestamp | None = Field(description="When the next event is retried.")
    previous_secret_expires_at: Timestamp | None = Field(
        description="Until when the secret before the last rotation still signs."
    )
    created_at: Timestamp
    updated_at: Timestamp


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret (`whsec_...`): shown this once.")


class WebhookList(CamelModel):
    webhooks: list[WebhookOut]


class DeliveryOut(CamelModel):
    id: int
    event_id: int
    attempt: int = Field(description="1 for the first attempt at this event.")
    status_code: int | None = Field(description="The receiver's status; null if none came.")
    error: str | None = Field(description="Why there was no status (timeout, refused, ...).")
    succeeded: bool
    duration_ms: int
    attempted_at: Timestamp


class DeliveriesPage(CamelModel):
    deliveries: list[DeliveryOut]
    next_before: int | None = Field(description="The `before` of the next (older) page.")


class WebhookFilter(QueryParameters):
    account_id: AccountId | None = Field(None, description="Only this account's webhooks.")


class DeliveryParameters(QueryParameters):
    limit: int = Field(100, ge=1, le=1000, description="The most attempts to return.")
    before: int | None = Field(
        None, ge=1, le=2**63 - 1, description="Attempts older than this one (its id)."
    )


class RotateParameters(QueryParameters):
    grace_period_seconds: int = Field(
        int(DEFAULT_GRACE.total_seconds()),
        ge=0,
        le=int(MAX_GRACE.total_seconds()),
        description="How long the old secret still signs beside the new one (0: it stops now).",
    )


class ReplayParameters(QueryParameters):
    from_: int = Field(
        ge=1, le=2**63 - 1, alias="from", description="The first event id to deliver again."
    )


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "accountId": webhook.account_id,
        "url": webhook.url,
        "types": list(webhook.types),
        "description": webhook.description,
        "state": webhook.state,
        "failingSince": optional_timestamp(webhook.failing_since),
        "deliveredThrough": webhook.delivered_through,
        "attempts": webhook.attempts,
        "nextAttemptAt": optional_timestamp(webhook.next_attempt_at),
        "previousSecretExpiresAt": optional_timestamp(webhook.previous_secret_expires_at),
        "createdAt": timestamp(webhook.created_at),
        "updatedAt": timestamp(webhook.updated_at),
    }


def _with_secret(made: WithSecret) -> dict[str, Any]:
    return {**webhook_json(made.webhook), "secret": made.secret}


def _delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "attempt": delivery.attempt,
        "statusCode": delivery.status_code,
        "error": delivery.error,
        "succeeded": delivery.succeeded,
        "durationMs": delivery.duration_ms,
        "attemptedAt": timestamp(delivery.attempted_at),
    }


def deliverer(settings: Settings, engine: AsyncEngine) -> Deliverer:
    """A candidate deliverer with the operator's settings, rendering events as the feed
    does (``roster serve`` runs one in each worker, ``roster deliver`` one alone)."""
    return Deliverer(
        engine,
        event_json,
        allow_private=settings.webhook_allow_private,
        lease_seconds=settings.webhook_lease_seconds,
    )


#: POST and PATCH's admin, authenticated on a connection given back at once: the URL's
#: host is resolved before the unit of work that writes it opens (on SQLite, its write
#: lock), not while it is held.
BriefAdmin = Annotated[
    Principal, Depends(authenticated_briefly(PEOPLE_CREDENTIALS, "admin"), scope="function")
]


async def _checked(request: Request, url: str) -> CheckedUrl:
    return await checked_url(url, services(request).settings.webhook_allow_private)


def _webhooks_changed(request: Request) -> None:
    """Once a registration or change has committed: this process's deliverer, if it
    holds the lease, serves it at once (another process's sees it within its next look
    at the webhooks, docs/events.md)."""
    found = services(request).deliverer
    if found is not None:
        found.webhooks_changed()


@router.post("/webhooks", status_code=201, response_model=WebhookWithSecret)
async def add_webhook(
    body: WebhookCreate, request: Request, principal: BriefAdmin
) -> dict[str, Any]:
    """Register an HTTPS endpoint for an account's events; the answer shows the signing
    secret, once. It receives the events that commit from now on."""
    url = await _checked(request, body.url)
    async with unit_of_work(services(request).engine, write=True) as conn:
        account_id = await require_account(conn, principal, body.account_id)
        made = await register_webhook(conn, account_id, url, body.types, body.description)
    _webhooks_changed(request)
    return _with_secret(made)


@router.get("/webhooks", response_model=WebhookList)
async def webhooks_of_accounts(
    wanted: Annotated[WebhookFilter, Query()], conn: ReadConnection, principal: AdminReader
) -> dict[str, Any]:
    """The webhooks of the accounts the client reaches (or of one of them), oldest first."""
    account_id = None
    if wanted.account_id is not None:
        account_id = await require_account(conn, principal, wanted.account_id)
    found = await list_webhooks(conn, principal.account_ids, account_id)
    return {"webhooks": [webhook_json(w) for w in found]}


@router.get("/webhooks/{webhookId}", response_model=WebhookOut)
async def one_webhook(
    webhook_id: WebhookId, conn: ReadConnection, principal: AdminReader
) -> dict[str, Any]:
    """One webhook, with its state and where its delivery stands."""
    return webhook_json(await get_webhook(conn, webhook_id, principal.account_ids))


@router.patch("/webhooks/{webhookId}", response_model=WebhookOut)
async def change_webhook(
    webhook_id: WebhookId,
    body: WebhookUpdate,
    request: Request,
    principal: BriefAdmin,
) -> dict[str, Any]:
    """Change a webhook's URL, types, description, or state: `active` re-enables a failing
    or disabled webhook, and delivery resumes where it stopped."""
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if body.url is not None:
        changes["url"] = await _checked(request, body.url)
    async with unit_of_work(services(request).engine, write=True) as conn:
        changed = await update_webhook(conn, webhook_id, principal.account_ids, changes)
    _webhooks_changed(request)
    return webhook_json(changed)


@router.delete("/webhooks/{webhookId}", status_code=204, response_class=Response)
async def remove_webhook(
    webhook_id: WebhookId, conn: WriteConnection, principal: Admin
) -> Response:
    """Remove a webhook and the log of its deliveries; nothing more is sent to it."""
    await delete_webhook(conn, webhook_id, principal.account_ids)
    return Response(status_code=204)


@router.post("/webhooks/{webhookId}/rotate-secret", response_model=WebhookWithSecret)
async def new_secret(
    webhook_id: WebhookId,
    parameters: Annotated[RotateParameters, Query()],
    conn: WriteConnection,
    principal: Admin,
) -> dict[str, Any]:
    """A new signing secret, shown once. During the grace period (24 h unless
    `gracePeriodSeconds` says) each delivery carries both signatures."""
    grace = timedelta(seconds=parameters.grace_period_seconds)
    return _with_secret(await rotate_secret(conn, webhook_id, principal.account_ids, grace))


@router.get("/webhooks/{webhookId}/deliveries", response_model=DeliveriesPage)
async def deliveries_of_webhook(
    webhook_id: WebhookId,
    parameters: Annotated[DeliveryParameters, Query()],
    conn: ReadConnection,
    principal: AdminReader,
) -> dict[str, Any]:
    """The webhook's delivery attempts, newest first: the event, the attempt's number, the
    receiver's status (or the error), how long it took, when."""
    found = await list_deliveries(
        conn, webhook_id, principal.account_ids, parameters.limit, parameters.before
    )
    more = len(found) == parameters.limit
    return {
        "deliveries": [_delivery_json(d) for d in found],
        "nextBefore": found[-1].id if found and more else None,
    }


@router.post(
    "/webhooks/{webhookId}/replay", response_model=WebhookOut, responses=error_responses(410)
)
async def replay_webhook(
    webhook_id: WebhookId,
    parameters: Annotated[ReplayParameters, Query()],
    conn: WriteConnection,
    principal: Admin,
) -> dict[str, Any]:
    """Deliver the account's events again from an event id on (the cursor moves to just
    before it; forward past an event a receiver cannot take, too)."""
    return webhook_json(await replay(conn, webhook_id, principal.account_ids, parameters.from_))
