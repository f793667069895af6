"""The People API (seed 002): one account's people, its roles, teams, budgets and addresses."""

from __future__ import annotations

from fastapi import APIRouter

from roster.api.people import addresses, listing, personas, roles, teams_and_budgets

router = APIRouter()
router.include_router(listing.router)
router.include_router(personas.router)
router.include_router(roles.router)
router.include_router(teams_and_budgets.router)
router.include_router(addresses.router)
