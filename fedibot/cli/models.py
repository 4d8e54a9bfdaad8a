"""`fedibot models`: the configured models, their family, source, presets and (with --load)
memory. Importing this module does not import torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from generator.config import GeneratorConfig, ModelConfig, guess_kind
from generator.families import FAMILIES, TINY_SOURCE, is_single_file, read_model_index


def source_state(mc: ModelConfig) -> str:
    """builtin | local | cached | missing | remote — without touching the network."""
    if mc.source == TINY_SOURCE:
        return "builtin"
    path = Path(mc.source).expanduser()
    if is_single_file(mc.source) or mc.source.startswith((".", "/", "~")):
        return "local" if path.exists() else "missing"
    if path.is_dir():
        return "local"
    try:
        return "cached" if read_model_index(mc.source) is not None else "remote"
    except (OSError, ValueError):
        return "remote"


def describe(config: GeneratorConfig, backend: Any | None = None) -> list[dict[str, Any]]:
    """One dict per configured model; `backend` (a DiffusersBackend) adds what is loaded."""
    loaded = {m.name: m for m in backend.cache.loaded()} if backend is not None else {}
    rows = []
    for name, mc in config.models.items():
        lm = loaded.get(name)
        kind = lm.kind if lm is not None else guess_kind(mc.source, mc.kind)
        fam = FAMILIES.get(kind) if kind else None
        rows.append(
            {
                "name": name,
                "default": name == config.default_model,
                "family": kind,
                "family_label": fam.label if fam else None,
                "kind_from": "config" if mc.kind else ("loaded" if lm else "guessed"),
                "source": mc.source,
                "source_state": source_state(mc),
                "loaded": lm is not None,
                "memory_bytes": lm.memory_bytes() if lm is not None else None,
                "load_seconds": round(lm.load_seconds, 2) if lm is not None else None,
                "base_preset": mc.base_preset,
                "preset": mc.preset.model_dump(),
                "img2img": bool(fam and fam.img2img),
                "negative_prompt": bool(fam and fam.negative_prompt),
                "qr_controlnet": mc.qr_controlnet,
            }
        )
    return rows


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.option(
    "--load",
    "load",
    multiple=True,
    metavar="NAME",
    help="load this model here (repeatable; 'all' for every one) to check it and show memory",
)
def models(as_json: bool, load: tuple[str, ...]) -> None:
    """The configured models: family, source, presets; loaded ones with their memory."""
    from fedibot.cli.common import load_config_or_exit

    config = load_config_or_exit().generator
    backend = None
    errors: dict[str, str] = {}
    if load:
        from generator.backend import DiffusersBackend
        from generator.types import GenerationError

        names = list(config.models) if "all" in load else list(load)
        unknown = [n for n in names if n not in config.models]
        if unknown:
            raise click.UsageError(f"unknown model(s) {unknown}; known: {list(config.models)}")
        backend = DiffusersBackend(
            config.model_copy(update={"max_loaded_models": max(1, len(names))})
        )
        for name in names:
            try:
                backend.load(name)
            except GenerationError as err:
                errors[name] = str(err)
    rows = describe(config, backend)
    for row in rows:
        row["error"] = errors.get(row["name"])
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from fedibot.cli.common import make_table, print_table

    table_rows = []
    for r in rows:
        p = r["preset"]
        mem = f"{r['memory_bytes'] / 2**20:.1f} MiB" if r["memory_bytes"] is not None else ""
        table_rows.append(
            (
                r["name"] + (" *" if r["default"] else ""),
                r["family_label"] or "unknown until loaded",
                f"{r['source']} ({r['source_state']})",
                "yes" if r["loaded"] else ("error: " + r["error"] if r["error"] else "no"),
                f"{r['base_preset']}: {p['steps']} steps ({p['min_steps']}-{p['max_steps']}), "
                f"cfg {p['guidance']:g} ({p['min_guidance']:g}-{p['max_guidance']:g}), "
                f"{p['width']}x{p['height']} (max {p['max_width']}x{p['max_height']})",
                mem,
            )
        )
    print_table(
        make_table(
            "models (* default)",
            ["name", "family", "source", "loaded", "preset", "memory"],
            table_rows,
        )
    )
