"""`fedibot check-prompt "TEXT" [--neg TEXT] [--lists PATH] [--json]`: the guard's verdict.

Needs no config and no secret, and imports no generator code. Exit status: 0 when allowed,
1 when refused, 2 for a usage error or an unreadable list file.
"""

from __future__ import annotations

import json

import click

from fedibot.moderation.guard.judge import judge
from fedibot.moderation.guard.lexicon import LexiconError, default_lexicon, load_lexicon


@click.command("check-prompt")
@click.argument("prompt")
@click.option("--neg", "negative", default="", help="the negative prompt")
@click.option(
    "--lists",
    "lists",
    multiple=True,
    type=click.Path(exists=True),
    help="extra guard list file or folder of *.toml (repeatable), merged into the shipped lists",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def check_prompt(prompt: str, negative: str, lists: tuple[str, ...], as_json: bool) -> None:
    """Say whether the prompt guard allows PROMPT, and why (rule and normalised words)."""
    try:
        lexicon = load_lexicon(lists) if lists else default_lexicon()
    except LexiconError as exc:
        raise click.UsageError(str(exc)) from None
    verdict = judge(prompt, negative, lexicon)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "allowed": verdict.allowed,
                    "code": verdict.code,
                    "reason": verdict.reason,
                    "rule": verdict.rule,
                    "matched": list(verdict.matched),
                    "mentions_minor": verdict.mentions_minor,
                    "normalised": verdict.normalised,
                    "normalised_negative": verdict.normalised_negative,
                },
                ensure_ascii=False,
            )
        )
    else:
        click.echo(f"{'allowed' if verdict.allowed else 'refused'} ({verdict.code})")
        if not verdict.allowed:
            click.echo(f"rule: {verdict.rule}")
            click.echo(f"matched: {', '.join(verdict.matched)}")
        click.echo(f"reason: {verdict.reason}")
        click.echo(f"mentions a minor: {'yes' if verdict.mentions_minor else 'no'}")
        click.echo(f"normalised: {verdict.normalised}")
        if negative:
            click.echo(f"normalised negative: {verdict.normalised_negative}")
    if not verdict.allowed:
        raise SystemExit(1)
