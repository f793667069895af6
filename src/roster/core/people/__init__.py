"""The People API's core: an account's people (persons seen through their personas),
listed with search, filters and embeds, and the writes that shape an account:
personas, roles, teams, budgets and addresses.
"""
