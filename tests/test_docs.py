"""Generated docs stay in step with the code that generates them."""

from __future__ import annotations

from pathlib import Path

from ultramax.cli.docs import generated_docs

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_and_configuration_references_match_what_the_code_generates() -> None:
    for path, text in generated_docs(ROOT).items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `python -m ultramax.cli.docs`"


def test_every_setting_in_the_table_appears_in_the_configuration_reference() -> None:
    from ultramax.config import SETTINGS

    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [s.key for s in SETTINGS if f"`{s.key}`" not in reference]
    assert missing == []
