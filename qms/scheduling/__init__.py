"""Reports on a schedule: schedules, what is due, the scheduler process, backups and alerts."""
