"""The People API (seed 002): one account's people, its roles, teams, budgets and addresses."""

from __future__ import annotations

from fastapi import APIRouter

from roster.api.people import account, listing, personas

router = APIRouter()
router.include_router(listing.router)
router.include_router(personas.router)
router.include_router(account.router)
