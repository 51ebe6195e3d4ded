"""A real project on disk, a real HOME with keys and settings, and the full safety engine over them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv
from ultramax.config import load_settings
from ultramax.modes import get_mode
from ultramax.pipeline.stages.safety import default_layers
from ultramax.safety.engine import SafetyDecision, SafetyEngine, SafetyRequest
from ultramax.safety.rules import Finding
from ultramax.safety.sanitize import SanitisationLayer, explain


@dataclass
class Gate:
    """The engine as the hook uses it, for one isolated user with one project (the working directory)."""

    env: UltramaxEnv
    project: Path
    engine: SafetyEngine

    @property
    def home(self) -> Path:
        return self.env.home

    def request(self, command: str | None = None, *, tool: str = "Bash", data: dict[str, Any] | None = None,
                mode: str = "development", cwd: Path | None = None) -> SafetyRequest:  # fmt: skip
        payload = dict(data or {})
        if command is not None:
            payload["command"] = command
        return SafetyRequest(
            tool=tool,
            input=payload,
            mode=get_mode(mode),
            settings=load_settings(self.env.paths, self.project),
            paths=self.env.paths,
            cwd=cwd or self.project,
            home=self.home,
            project_dir=self.project,
            session_id=f"test-{uuid.uuid4().hex[:8]}",
            principal="tester",
            metadata={"tmpdir": "/tmp"},
        )

    def decide(self, command: str | None = None, **kw: Any) -> SafetyDecision:
        return self.engine.evaluate(self.request(command, **kw))

    def permission(self, command: str | None = None, **kw: Any) -> str:
        return self.decide(command, **kw).permission

    def findings(self, command: str | None = None, **kw: Any) -> list[Finding]:
        return explain(self.request(command, **kw))


def make_home(env: UltramaxEnv) -> None:
    """Keys, credentials and start-up files where a developer has them."""
    ssh = env.home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    (ssh / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
    (ssh / "id_ed25519.pub").write_text("ssh-ed25519 AAAA dev@laptop\n")
    (ssh / "config").write_text("Host *\n  AddKeysToAgent yes\n")
    (env.home / ".aws").mkdir(exist_ok=True)
    (env.home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = x\n")
    (env.home / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    (env.home / "Documents").mkdir(exist_ok=True)
    (env.home / "Documents" / "notes.md").write_text("notes\n")


def make_project(env: UltramaxEnv) -> Path:
    """A git repository with uncommitted work, build output, a .env and its template."""
    project = env.project("demo")
    (project / ".git" / "hooks").mkdir(parents=True, exist_ok=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "src").mkdir(exist_ok=True)
    (project / "src" / "app.py").write_text("print('hello')\n")
    (project / "node_modules" / "left-pad").mkdir(parents=True, exist_ok=True)
    (project / "dist").mkdir(exist_ok=True)
    (project / ".env").write_text("DATABASE_URL=postgres://user:secret@db/app\n")
    (project / ".env.example").write_text("DATABASE_URL=\n")
    (project / ".claude").mkdir(exist_ok=True)
    (project / ".claude" / "settings.json").write_text(json.dumps({"ultramax": {}}))
    return project


@pytest.fixture
def gate(umx: UltramaxEnv) -> Gate:
    make_home(umx)
    return Gate(umx, make_project(umx), SafetyEngine(default_layers()))


@pytest.fixture
def layer() -> SanitisationLayer:
    return SanitisationLayer()
