"""The admin API (spec/events.md): accounts and API clients managed over HTTP.

``admin`` scope, the People API's credential contract and names (camelCase). Each route
calls one core function with the calling client as ``by``: a client reaching some
accounts sees and manages only those accounts, and only the clients that reach nothing
else; what it creates never reaches further than it does (docs/admin-api.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Body as BodyParameter
from fastapi import Path, Query
from pydantic import Field, StrictBool

from roster.api.deps import ReadConnection, WriteConnection
from roster.api.fields import AccountId, ClientId, JsonInt, NotNull, Rules, Timestamp
from roster.api.openapi import error_responses
from roster.api.people.contract import Admin, AdminReader, PageParameters, people_router
from roster.api.people.models import Body, CamelModel, optional_timestamp, timestamp
from roster.core.accounts import (
    Account,
    accounts_page,
    create_account,
    reachable_account,
    update_account,
)
from roster.core.auth import (
    MAX_GRACE,
    SCOPES,
    ClientCredentials,
    ClientSummary,
    clients_page,
    create_client,
    get_client,
    revoke_client,
    rotate_client,
)
from roster.core.fields import ACCOUNT, CLIENT
from roster.core.people.paging import Page
from roster.errors import Problem, Unprocessable

router = people_router("Admin API: accounts and clients")
AccountPath = Annotated[str, Path(alias="accountId"), Rules(ACCOUNT["id"])]
ClientPath = Annotated[ClientId, Path(alias="clientId")]
Scope = Literal[SCOPES]  # type: ignore[valid-type]
GRACE_SECONDS_MAX = int(MAX_GRACE.total_seconds())


Listing = Annotated[PageParameters, Query()]


# -- accounts ------------------------------------------------------------------------------------


class AccountCreate(Body):
    id: AccountId
    name: Annotated[str, Rules(ACCOUNT["name"])]
    external_ref: Annotated[str, Rules(ACCOUNT["external_ref"])] | None = None


class AccountUpdate(Body):
    """Any of an account's name and external ref (``null`` clears the external ref)."""

    name: Annotated[Annotated[str, Rules(ACCOUNT["name"])] | None, NotNull()] = None
    external_ref: Annotated[str, Rules(ACCOUNT["external_ref"])] | None = None


class AccountOut(CamelModel):
    id: str
    name: str
    external_ref: str | None
    created_at: Timestamp


class AccountsPage(CamelModel):
    count: int = Field(description="Every account the client reaches.")
    limit: int
    offset: int
    rows: list[AccountOut]


def _account(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        name=account.name,
        external_ref=account.external_ref,
        created_at=timestamp(account.created_at),
    )


def _page(page: Page[Any], render: Any) -> dict[str, Any]:
    rows = [render(row) for row in page.rows]
    return {"count": page.count, "limit": page.limit, "offset": page.offset, "rows": rows}


@router.get("/accounts", response_model=AccountsPage)
async def list_accounts(listing: Listing, conn: ReadConnection, principal: AdminReader) -> Any:
    """The accounts this client reaches, by id."""
    return _page(await accounts_page(conn, principal, listing.paging()), _account)


@router.post(
    "/accounts", status_code=201, response_model=AccountOut, responses=error_responses(409)
)
async def add_account(body: AccountCreate, conn: WriteConnection, principal: Admin) -> AccountOut:
    """Create an account with its six core roles (a client of every account only)."""
    made = await create_account(conn, body.id, body.name, body.external_ref, by=principal)
    return _account(made)


@router.get("/accounts/{accountId}", response_model=AccountOut)
async def get_account(
    account_id: AccountPath, conn: ReadConnection, principal: AdminReader
) -> AccountOut:
    """One account this client reaches."""
    return _account(await reachable_account(conn, principal, account_id))


@router.patch("/accounts/{accountId}", response_model=AccountOut, responses=error_responses(409))
async def change_account(
    account_id: AccountPath, body: AccountUpdate, conn: WriteConnection, principal: Admin
) -> AccountOut:
    """Change an account's name or external ref; its id never changes."""
    changes = body.model_dump(by_alias=False, include=body.model_fields_set)
    return _account(await update_account(conn, account_id, changes, by=principal))


# -- clients -------------------------------------------------------------------------------------


class ClientCreate(Body):
    """A client reaching some accounts (``accountIds``) or every one (``allAccounts``)."""

    name: Annotated[str, Rules(CLIENT["name"])]
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))
    account_ids: list[AccountId] | None = Field(None, min_length=1, max_length=1000)
    all_accounts: StrictBool = False


class ClientRotation(Body):
    # JSON's false is not 0 seconds (schemathesis sent it, and it was taken).
    grace_period_seconds: JsonInt = Field(
        0,
        ge=0,
        le=GRACE_SECONDS_MAX,
        description="How long the old secret and key (and the tokens they gave) keep working: "
        "0 (the default) stops them at once; at most 7 days.",
    )


class ClientOut(CamelModel):
    id: str = Field(description="The client id (`client_id` at POST /oauth2/token).")
    name: str
    scopes: list[Scope]
    all_accounts: bool
    account_ids: list[str] | None = Field(description="The accounts it reaches; null: every one.")
    created_at: Timestamp
    rotated_at: Timestamp | None
    revoked_at: Timestamp | None


class ClientWithCredentials(ClientOut):
    """A client with its new secret and key: shown this once, stored only as digests."""

    client_secret: str
    api_key: str


class RotatedClient(ClientWithCredentials):
    previous_credentials_expire_at: Timestamp = Field(
        description="When the old secret and key stop working (the rotation's time: at once)."
    )


class ClientsPage(CamelModel):
    count: int = Field(description="Every client this client manages.")
    limit: int
    offset: int
    rows: list[ClientOut]


def _client(client: ClientSummary) -> dict[str, Any]:
    return {
        "id": client.client_id,
        "name": client.name,
        "scopes": list(client.scopes),
        "allAccounts": client.account_ids is None,
        "accountIds": None if client.account_ids is None else list(client.account_ids),
        "createdAt": timestamp(client.created_at),
        "rotatedAt": optional_timestamp(client.rotated_at),
        "revokedAt": optional_timestamp(client.revoked_at),
    }


def _with(client: ClientSummary, credentials: ClientCredentials) -> dict[str, Any]:
    return {
        **_client(client),
        "clientSecret": credentials.client_secret,
        "apiKey": credentials.api_key,
    }


@router.get("/clients", response_model=ClientsPage)
async def list_clients(listing: Listing, conn: ReadConnection, principal: AdminReader) -> Any:
    """The API clients this client manages (those reaching only accounts it reaches),
    oldest first; never a secret or key."""
    return _page(await clients_page(conn, listing.paging(), by=principal), _client)


@router.post(
    "/clients",
    status_code=201,
    response_model=ClientWithCredentials,
    responses=error_responses(422),
)
async def add_client(body: ClientCreate, conn: WriteConnection, principal: Admin) -> Any:
    """Create an API client; its secret and key are in this answer only."""
    if body.all_accounts == (body.account_ids is not None):
        # Each field is well formed alone: giving both, or neither, breaks a rule (422).
        problem = "give accountIds (one or more) or allAccounts: true, not both"
        raise Unprocessable(
            f"Invalid accountIds: {problem}.", details=[Problem("account_ids", problem)]
        )
    reach = None if body.all_accounts else body.account_ids
    made = await create_client(conn, body.name, body.scopes, reach, by=principal)
    return _with(await get_client(conn, made.client_id), made)


@router.get("/clients/{clientId}", response_model=ClientOut)
async def get_api_client(
    client_id: ClientPath, conn: ReadConnection, principal: AdminReader
) -> Any:
    """One API client this client manages; never its secret or key."""
    return _client(await get_client(conn, client_id, by=principal))


@router.post("/clients/{clientId}/revoke", response_model=ClientOut)
async def revoke_api_client(client_id: ClientPath, conn: WriteConnection, principal: Admin) -> Any:
    """Revoke a client: its key, secret, tokens and sessions stop from the next request
    (revoking it again changes nothing)."""
    await revoke_client(conn, client_id, by=principal)
    return _client(await get_client(conn, client_id))


@router.post(
    "/clients/{clientId}/rotate", response_model=RotatedClient, responses=error_responses(409)
)
async def rotate_api_client(
    client_id: ClientPath,
    conn: WriteConnection,
    principal: Admin,
    body: Annotated[ClientRotation | None, BodyParameter()] = None,
) -> Any:
    """Give a client a new secret and key (in this answer only); the old ones stop at once,
    or after ``gracePeriodSeconds``."""
    grace = timedelta(seconds=body.grace_period_seconds if body else 0)
    done = await rotate_client(conn, client_id, grace, by=principal)
    rotated = _with(await get_client(conn, client_id), done.credentials)
    return {**rotated, "previousCredentialsExpireAt": timestamp(done.previous_expire_at)}
