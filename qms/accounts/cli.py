"""`qms user ...`: accounts from the command line (the first administrator)."""

from __future__ import annotations

import click

from qms.accounts import service
from qms.core.errors import QmsError
from qms.runtime import current_runtime


@click.group("user")
def user_group() -> None:
    """Manage user accounts."""


@click.command("create")
@click.option("--username", required=True)
@click.option("--full-name", required=True, help="Printed on every signature.")
@click.option("--role", required=True, type=click.Choice([r.value for r in service.Role]))
@click.option(
    "--site",
    "sites",
    multiple=True,
    required=True,
    help="Site id; repeat for a quality officer, regulator or administrator of several sites.",
)
@click.option(
    "--site-name", default=None, help="Create the site with this name if it does not exist yet."
)
@click.option("--email", default=None, help="Where reminders and alerts for them are mailed.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_user_command(username, full_name, role, sites, site_name, email, password) -> None:
    """Create a user (for example the first administrator)."""
    from qms.accounts.models import Site

    database = current_runtime().database
    try:
        with database.transaction() as session:
            for site_id in sites:
                if session.get(Site, site_id) is None:
                    if not site_name:
                        raise service.AccountError(
                            f"site {site_id} does not exist; pass --site-name to create it"
                        )
                    service.create_site(session=session, site_id=site_id, name=site_name)
            session.flush()
            user = service.create_user(
                session=session,
                actor=service.Actor.system(),
                username=username,
                full_name=full_name,
                role=role,
                password=password,
                site_ids=list(sites),
                reason="created from the command line",
                email=email,
            )
            click.echo(f"created {user.username} ({role}) at {', '.join(sites)}")
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("email")
@click.argument("username")
@click.argument("address", required=False)
@click.option("--none", "remove", is_flag=True, help="Take the address away.")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
def email_command(username, address, remove, reason) -> None:
    """Give USERNAME's account the mail ADDRESS, or take it away with --none."""
    if bool(address) == remove:
        raise click.UsageError("give an ADDRESS, or --none to take the address away")
    database = current_runtime().database
    try:
        with database.transaction() as session:
            user = service.get_user_by_username(session=session, username=username)
            if user is None:
                raise service.AccountError(f"there is no user {username}")
            service.set_email(
                session=session,
                actor=service.Actor.system(),
                user=user,
                email=None if remove else address,
                reason=reason,
            )
            click.echo(f"{user.username}: email {user.email or '(none)'}")
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None


user_group.add_command(create_user_command)
user_group.add_command(email_command)
commands = [user_group]
