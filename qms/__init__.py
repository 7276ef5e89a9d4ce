"""qms: quality management and audit of cell therapies in hospitals.

`flask --app qms ...` finds `create_app` here.
"""

from qms.web.app import create_app

__all__ = ["create_app"]
