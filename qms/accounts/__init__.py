"""Accounts: sites, wards, users, roles and their permissions, logins."""
