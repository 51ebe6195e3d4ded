"""Secrets are redacted before anything is stored or logged; ordinary text is left exactly as it was."""

from __future__ import annotations

import pytest

from ultramax.redact import (
    dumps_environment,
    is_env_file,
    is_key_file,
    prints_secret_variable,
    redact,
    redact_obj,
    redact_path,
    strip_private,
)

# Credential-shaped test values, assembled so that no scanner mistakes this file for a leak.
ANTHROPIC = "sk-ant-" + "api03-Xk2f9QmR7tLw4Zp8Vn3Bc6Hd"
OPENAI = "sk-" + "proj-" + "T3BlbkFJ8mQ2rL7xZ4pW9vN6cK1s"
STRIPE = "sk_" + "live_" + "51HvQ2eKZx8rT4mP9wL"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITLAB = "glpat-" + "x9Y8z7W6v5U4t3S2r1Q0"
SLACK = "xoxb-" + "2048-1337-Qw3rTy8uIo"
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nq9f\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"export ANTHROPIC_API_KEY={ANTHROPIC}", "export ANTHROPIC_API_KEY=[REDACTED:anthropic-key]"),
        (f"client = OpenAI(api_key='{OPENAI}')", "client = OpenAI(api_key='[REDACTED:openai-key]')"),
        (f"stripe.api_key = {STRIPE}", "stripe.api_key = [REDACTED:stripe-key]"),
        (f"aws configure set aws_access_key_id {AWS}", "aws configure set aws_access_key_id [REDACTED:aws-access-key]"),
        (
            f"git clone https://{GITHUB}@github.com/acme/api",
            "git clone https://[REDACTED:github-token]@github.com/acme/api",
        ),
        (f"GITLAB_TOKEN={GITLAB}", "GITLAB_TOKEN=[REDACTED:gitlab-token]"),
        (f"slack token {SLACK}", "slack token [REDACTED:slack-token]"),
        (f"maps?key={GOOGLE}&q=x", "maps?key=[REDACTED:google-api-key]&q=x"),
        (f"cookie: session={JWT}", "cookie: session=[REDACTED:jwt]"),
        (f"key file:\n{PRIVATE_KEY}\ndone", "key file:\n[REDACTED:private-key]\ndone"),
        ("Authorization: Bearer 9f8e7d6c5b4a39281706abcdef", "Authorization: Bearer [REDACTED:bearer-token]"),
        ("psql postgres://admin:hunter22@db:5432/app", "psql postgres://admin:[REDACTED:password]@db:5432/app"),
        ("DB_PASSWORD=s3cr3t-pass", "DB_PASSWORD=[REDACTED:secret]"),
        ("mysql -u root --password=hunter22 app", "mysql -u root --password=[REDACTED:secret] app"),
        ('{"client_secret": "0a1b2c3d4e"}', '{"client_secret": "[REDACTED:secret]"}'),
        ("apiKey: 'abcd1234efgh'", "apiKey: '[REDACTED:secret]'"),
        ("x-api-key: 5f4dcc3b5aa765d6", "x-api-key: [REDACTED:secret]"),
        ("PGPASSWORD=s3cr3t psql", "PGPASSWORD=[REDACTED:secret] psql"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=[REDACTED:secret]"),
    ],
)
def test_each_kind_of_secret_is_redacted_and_named(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_provider_key_in_an_assignment_keeps_its_specific_kind() -> None:
    assert redact(f"GITHUB_TOKEN={GITHUB}") == "GITHUB_TOKEN=[REDACTED:github-token]"


def test_an_unterminated_private_key_block_is_redacted_to_the_end() -> None:
    assert redact("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA") == "[REDACTED:private-key]"


@pytest.mark.parametrize(
    "text",
    [
        "implement the password reset flow",
        "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
        "max_tokens=4096",
        "response = client.messages.create(model=m, max_tokens: 1024)",
        "num_tokens = len(tokens)",
        "token_count=1200 token_budget=5000",
        "csrf_token_name = csrftoken",
        "password_reset_url=https://example.com/reset",
        "Secretary = Alice",
        "PWD=/home/dev/work/demo OLDPWD=/home/dev",
        "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
        "session 658ea207-91bb-41ad-88e9-9a85c21e6c99 resumed",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "pip install scikit-learn sk-learn-compatible-estimators",
        "Bearer authentication is configured in settings",
        "ssh://git@github.com/acme/api.git",
        "https://github.com/acme/api/pull/1234",
        "toolu_01HXk3vQ9fzY2mW7r8sT4uLp",
        "risk-management-framework and task-scheduler-service",
        "",
    ],
)
def test_ordinary_text_is_left_untouched(text: str) -> None:
    assert redact(text) == text


def test_a_password_label_with_a_value_is_redacted_but_the_label_kept() -> None:
    assert redact("password: hunter22") == "password: [REDACTED:secret]"


def test_redact_obj_redacts_every_string_and_keeps_keys_and_other_values() -> None:
    value = {
        "command": f"curl -H 'Authorization: Bearer {JWT}' https://api",
        "env": ["HOME=/home/dev", f"OPENAI_API_KEY={OPENAI}"],
        "DB_PASSWORD": "not redacted: it is a key",
        "count": 3,
        "flag": None,
    }
    assert redact_obj(value) == {
        "command": "curl -H 'Authorization: Bearer [REDACTED:jwt]' https://api",
        "env": ["HOME=/home/dev", "OPENAI_API_KEY=[REDACTED:openai-key]"],
        "DB_PASSWORD": "not redacted: it is a key",
        "count": 3,
        "flag": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deploy <private>pin 4411</private> tonight", "deploy  tonight"),
        ("deploy <PRIVATE>pin 4411</PRIVATE> tonight", "deploy  tonight"),
        ("a\n<private>\nvault pin 4411\n</private>\nb", "a\n\nb"),
        ("<private>a <private>b</private> pin 4411</private> c", " c"),
        ('<private reason="vault">pin 4411</private> ok', " ok"),
        ("<private >pin 4411</private > ok", " ok"),
        ("< private >pin 4411</ private > ok", " ok"),
        ("&lt;private&gt;pin 4411&lt;/private&gt; ok", " ok"),
        ("<pri\u200bvate>pin 4411</private> ok", " ok"),
        ("＜private＞pin 4411＜/private＞ ok", " ok"),
        ("keep this <private> pin 4411 and all that follows", "keep this "),
        ("pin 4411 (its opening tag was cut off)\n</private>\nmake: done", "\nmake: done"),
        ("x <private>1</private> y <private>2</private> z", "x  y  z"),
    ],
)
def test_every_form_of_private_span_is_dropped_and_the_text_outside_kept(text: str, expected: str) -> None:
    assert strip_private(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "class Vault { private key: string; private readonly pin = 4; }",
        "<privateKey>abc</privateKey> and <private-network/>",
        "the private API is documented in private.md",
        "(r'(<PRIVATE|PRIVATE>)(\\s)', bygroups(Keyword.Namespace))",
    ],
)
def test_the_word_private_outside_a_tag_is_ordinary_text(text: str) -> None:
    assert strip_private(text) == text


def test_redact_marks_where_a_private_span_was_removed() -> None:
    assert redact("run it <private>pin 4411</private> now") == "run it [REDACTED:private] now"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".env;", True),
        ("'.env.local'", True),
        ("<config/prod.env", True),
        ("/home/dev/.pgpass", True),
        ("~/.git-credentials", True),
        ("/home/dev/.aws/credentials", True),
        ("~/.docker/config.json", True),
        ("infra/prod.tfvars", True),
        ("k8s/secrets.yaml", True),
        ("environment.py", False),
        ("docs/credentials.md", False),
        ("config.json", False),
    ],
)
def test_credential_files_are_recognised_by_name_even_with_shell_punctuation(path: str, expected: bool) -> None:
    assert is_env_file(path) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/ssl/private/server.key", True),
        ("certs/client.pem", True),
        ("/home/dev/.ssh/id_rsa", True),
        ("~/.ssh/id_ed25519;", True),
        ("deploy.ppk", True),
        ("/home/dev/.ssh/id_rsa.pub", False),
        ("src/keys.py", False),
        ("id_utils.py", False),
    ],
)
def test_key_files_are_recognised_by_name(path: str, expected: bool) -> None:
    assert is_key_file(path) is expected


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo $DB_PASSWORD", True),
        ('curl -H "Authorization: Bearer ${GITHUB_TOKEN}" https://api.github.com/user', True),
        ("printenv STRIPE_SECRET", True),
        ("echo %API_KEY%", True),
        ("echo $HOME $PATH", False),
        ("python train.py --tokenizer $TOKENIZER_PATH", False),
        ("echo $PWD", False),
    ],
)
def test_commands_that_use_a_secret_variable_are_recognised(command: str, expected: bool) -> None:
    assert prints_secret_variable(command) is expected


@pytest.mark.parametrize(
    ("command", "expected"),
    [("env", True), ("env | sort", True), ("printenv", True), ("export -p", True), ("env FOO=1 make", False)],
)
def test_commands_that_print_the_whole_environment_are_recognised(command: str, expected: bool) -> None:
    assert dumps_environment(command) is expected


@pytest.mark.parametrize(
    "text",
    [
        "machine api.heroku.com\n  login bob@example.com\n  password Hunter2Passw0rd",
        "machine example.com login bob password Hunter2Passw0rd",
    ],
)
def test_netrc_logins_and_passwords_are_redacted_and_the_machine_kept(text: str) -> None:
    out = redact(text)
    assert "Hunter2Passw0rd" not in out and "bob" not in out
    assert out.startswith("machine ") and ".com" in out and "password [REDACTED:netrc]" in out


def test_the_word_password_in_prose_next_to_a_netrc_entry_is_left_alone() -> None:
    text = "machine ci.example.com login bot password s3cr3t-x\nthe password rotates weekly"
    assert redact(text).splitlines()[1] == "the password rotates weekly"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"config/{ANTHROPIC}.txt", "config/[REDACTED:anthropic-key].txt"),
        (f"/srv/cache/{GITHUB}/index.json", "/srv/cache/[REDACTED:github-token]/index.json"),
        (f"/home/me/keys/backup_{AWS}.csv", "/home/me/keys/backup_[REDACTED:aws-access-key].csv"),
        ("/data/token=9f8e7d6c5b4a39281706/out.log", "/data/token=[REDACTED:secret]/out.log"),
        (f"C:\\Users\\me\\{GITLAB}\\notes.md", "C:\\Users\\me\\[REDACTED:gitlab-token]\\notes.md"),
    ],
)
def test_a_secret_that_is_a_file_or_folder_name_is_redacted_and_the_rest_of_the_path_kept(
    path: str, expected: str
) -> None:
    assert redact_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/home/me/work/api/src/auth/token_store.py",
        "tests/test_secret_key_rotation.py",
        ".git/objects/6a/26e59d3c1f0b8e2a7d4c5b9f0e1d2c3b4a5968",
        "/etc/password-policy.d/10-min-length.conf",
        "",
    ],
)
def test_an_ordinary_path_is_left_as_it_is(path: str) -> None:
    assert redact_path(path) == path
