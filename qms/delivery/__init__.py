"""Delivery of released reports: the outbox, mail over SMTP, and the regulators' portal."""
