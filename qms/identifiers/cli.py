"""The `qms identify` command: what a scanned label code is, as JSON."""

from __future__ import annotations

import json
import sys

import click

from qms.identifiers.identify import identify


@click.command("identify")
@click.argument("code")
def identify_command(code: str) -> None:
    """Identify a label CODE and check it; print the result as JSON.

    CODE may be an ISBT 128 donation identification number (=G12341765432170, or the 13
    characters G123417654321), an ISBT 128 chain of identity identifier
    (CHG123426ABC123), a GS1 drug pack barcode (with or without a scanner prefix such as
    ]d2, group separators as ASCII 29, <GS> or \\x1d, or the printed form
    "(01)09506000134352(17)260630(10)ABC"), or any other text. Quote it in the shell,
    which treats ( ) < > specially. Give - to read one line from standard input (point
    a scanner at the terminal).

    Exit status: 0 when the code is valid, 1 when it is not (the "problems" in the JSON
    say why).
    """
    if code == "-":
        code = sys.stdin.readline().rstrip("\r\n")
    result = identify(code)
    click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    if not result.valid:
        sys.exit(1)


commands = [identify_command]
