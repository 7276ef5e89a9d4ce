"""What every domain shares: the ledger, the audit trail, the canonical form, the clock, errors, languages."""
