"""The moderation CLI through click's CliRunner: tables, one JSON document with --json, clear
one-line errors with exit code 2, and every change in the audit log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fedibot.queue.jobs import JobQueue, NewJob
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from tests.policy.conftest import AGENT, TRUSTED, cli_root


def write_config(
    tmp_path: Path,
    db_url: str,
    base_url: str = "http://127.0.0.1:9/api/v1",
    mode: str = "blocklist",
    extra: str = "",
) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{db_url}"

[policy]
mode = "{mode}"

[quotas]
user_requests_per_hour = 2
exempt = ["boss@ok.example"]

[fediseer]
enabled = true
base_url = "{base_url}"
trusted = {json.dumps(TRUSTED)}
client_agent = "{AGENT}"
deny_censured_by = 2
max_retries = 0
timeout_seconds = 0.5
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path, sqlite_url) -> Path:
    return write_config(tmp_path, sqlite_url)


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli_root, ["--config", str(config), *args], catch_exceptions=False)


def as_json(result: Result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_allow_deny_unset_list_show(config) -> None:
    result = cli(config, "allowlist", "deny", "Evil.Example", "--note", "spam wave")
    assert result.exit_code == 0, result.output
    assert "evil.example: manual deny added; now not allowed" in result.stdout
    assert cli(config, "allowlist", "allow", "friends.example").exit_code == 0

    listed = as_json(cli(config, "allowlist", "list", "--json"))
    assert [(e["domain"], e["action"], e["source"]) for e in listed] == [
        ("evil.example", "deny", "manual"),
        ("friends.example", "allow", "manual"),
    ]
    assert listed[0]["note"] == "spam wave"
    assert as_json(cli(config, "allowlist", "list", "--source", "fediseer", "--json")) == []

    shown = as_json(cli(config, "allowlist", "show", "evil.example", "--json"))
    assert (shown["allowed"], shown["decided_by"], shown["mode"]) == (
        False,
        "override",
        "blocklist",
    )
    assert shown["reason"] == "manual deny: spam wave" and shown["since"] > 0

    table = cli(config, "allowlist", "show", "evil.example")
    assert "NOT allowed" in table.stdout and "spam wave" in table.stdout
    table = cli(config, "allowlist", "list")
    assert "friends.example" in table.stdout and "2 entries" in table.stdout

    assert "manual override removed" in cli(config, "allowlist", "unset", "evil.example").stdout
    assert "no manual override" in cli(config, "allowlist", "unset", "evil.example").stdout
    shown = as_json(cli(config, "allowlist", "show", "evil.example", "--json"))
    assert (shown["allowed"], shown["decided_by"]) == (True, "mode")

    actions = [r["action"] for r in as_json(cli(config, "audit", "--json"))]
    assert actions == ["allowlist.deny", "allowlist.allow", "allowlist.unset"]


@pytest.mark.parametrize(
    "args",
    [
        ["allowlist", "allow", "not a domain"],
        ["allowlist", "show", "https://x.example/"],
        ["allowlist", "unset", "nodots"],
        ["users", "ban", "nobody"],
        ["quota", "show", "@x"],
        ["audit", "--since", "last tuesday"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(config, args) -> None:
    result = cli(config, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_bad_config_exits_2_with_the_message(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[policy]\nmode = "closed"\n', encoding="utf-8")
    result = cli(path, "users", "list")
    assert result.exit_code == 2
    assert "policy.mode" in result.stderr


def test_csv_import_export(config, tmp_path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("domain,action,note\na.example,allow,friends\nb.example,deny,spam\n")
    result = cli(config, "allowlist", "import", str(good))
    assert result.exit_code == 0 and "2 added" in result.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("domain,action,note\nc.example,allow,\nnot valid,deny,\nd.example,nope,\n")
    result = cli(config, "allowlist", "import", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:3: 'not valid' is not a bare domain name" in result.stderr
    assert f"{bad}:4: action 'nope'" in result.stderr
    assert "nothing imported (2 bad rows)" in result.stderr

    exported = cli(config, "allowlist", "export")
    assert exported.stdout == "domain,action,note\na.example,allow,friends\nb.example,deny,spam\n"
    out = tmp_path / "out.csv"
    assert cli(config, "allowlist", "export", "--output", str(out)).exit_code == 0
    assert out.read_text() == exported.stdout


def test_users_ban_unban_list(config) -> None:
    assert (
        "troll@bad.example: banned"
        in cli(config, "users", "ban", "@Troll@Bad.Example", "--note", "harassment").stdout
    )
    listed = as_json(cli(config, "users", "list", "--json"))
    assert [(b["acct"], b["note"]) for b in listed] == [("troll@bad.example", "harassment")]
    assert "troll@bad.example" in cli(config, "users", "list").stdout
    assert "unbanned" in cli(config, "users", "unban", "troll@bad.example").stdout
    assert "was not banned" in cli(config, "users", "unban", "troll@bad.example").stdout
    assert as_json(cli(config, "users", "list", "--json")) == []
    audit = as_json(cli(config, "audit", "--since", "1h", "--json"))
    assert [(r["action"], r["target"]) for r in audit] == [
        ("users.ban", "troll@bad.example"),
        ("users.unban", "troll@bad.example"),
    ]
    assert as_json(cli(config, "audit", "--since", "2999-01-01", "--json")) == []
    assert "users.ban" in cli(config, "audit").stdout


def test_quota_show(config, sqlite_url) -> None:
    async def seed() -> None:
        db = Database(sqlite_url)
        await upgrade(db)
        queue = JobQueue(db)
        for i in range(2):
            await queue.enqueue(
                NewJob("mastodon", "bot", str(i), "ann@ok.example", "a fox",
                       requester_domain="ok.example", n=2)
            )  # fmt: skip
        await db.dispose()

    asyncio.run(seed())
    report = as_json(cli(config, "quota", "show", "ann@ok.example", "--json"))
    assert report["acct"] == "ann@ok.example" and report["exempt"] is False
    limits = {line["name"]: line for line in report["limits"]}
    hour = limits["user_requests_per_hour"]
    assert (hour["used"], hour["limit"], hour["exceeded"]) == (2, 2, True)
    assert time.time() + 3500 < hour["reset_at"] <= time.time() + 3600
    assert limits["user_images_per_day"]["used"] == 4
    assert limits["instance_requests_per_day"]["used"] == 2
    table = cli(config, "quota", "show", "ann@ok.example").stdout
    assert "requests per hour" in table and "UTC" in table
    assert "exempt" in cli(config, "quota", "show", "boss@ok.example").stdout


async def test_fediseer_sync_and_history(fake, tmp_path, sqlite_url) -> None:
    config = write_config(tmp_path, sqlite_url, base_url=fake.base_url)

    async def run(*args: str) -> Result:
        return await asyncio.to_thread(cli, config, *args)

    dry = await run("fediseer", "sync", "--dry-run", "--json")
    assert as_json(dry)["status"] == "dry_run"
    assert as_json(await run("allowlist", "list", "--json")) == []

    applied = await run("fediseer", "sync")
    assert applied.exit_code == 0, applied.output
    assert "sync applied" in applied.stdout
    assert "+ allow: 3  beta.example, delta.example, gamma.example" in applied.stdout
    assert "+ deny: 1  spam.example" in applied.stdout
    entries = as_json(await run("allowlist", "list", "--source", "fediseer", "--json"))
    assert {e["domain"]: e["action"] for e in entries} == {
        "beta.example": "allow",
        "delta.example": "allow",
        "gamma.example": "allow",
        "spam.example": "deny",
    }
    shown = as_json(await run("allowlist", "show", "spam.example", "--json"))
    assert shown["decided_by"] == "fediseer" and shown["reason"].startswith("denied: censured by")

    fake.graph.withdraw_endorsement("alpha.example", "delta.example")
    held = await run("fediseer", "sync", "--json")
    assert held.exit_code == 3
    outcome = json.loads(held.stdout)
    assert outcome["status"] == "held" and outcome["summary"]["removed_allow"] == ["delta.example"]
    forced = await run("fediseer", "sync", "--force")
    assert forced.exit_code == 0 and "- allow: 1  delta.example" in forced.stdout
    assert "applied with --force" in forced.stdout

    fake.fail("*", 500)
    failed = await run("fediseer", "sync")
    assert failed.exit_code == 1 and "the last good list is kept" in failed.stdout

    history = as_json(await run("fediseer", "history", "--json"))
    assert [h["status"] for h in history] == ["failed", "applied", "held", "applied", "dry_run"]
    assert "fediseer_unavailable" in history[0]["error"]
    table = (await run("fediseer", "history")).stdout
    assert "held" in table and "failed" in table
    audit = as_json(await run("audit", "--json"))
    assert [r["action"] for r in audit] == ["fediseer.sync", "fediseer.sync"]


def test_fediseer_sync_without_trusted_is_a_config_problem(tmp_path, sqlite_url) -> None:
    config = write_config(tmp_path, sqlite_url)
    config.write_text(
        config.read_text()
        .replace("enabled = true", "enabled = false")
        .replace(f"trusted = {json.dumps(TRUSTED)}", "trusted = []")
    )
    result = cli(config, "fediseer", "sync")
    assert result.exit_code == 2 and "fediseer.trusted is empty" in result.stderr
