"""Quality: audit runs, finding reviews, deviations and CAPA (issue "Audits, deviations and CAPA")."""
