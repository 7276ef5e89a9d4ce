"""Records: units, step records, the append-only ledger, corrections, signatures, interchange."""
