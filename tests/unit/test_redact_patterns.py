"""Secrets known by their shape or by where they stand (key blocks, vendor tokens, headers, URLs, command
lines, credential formats) are redacted; the text around them, and look-alikes in ordinary text, are kept."""

from __future__ import annotations

import pytest

from ultramax.redact import redact

# Credential-shaped test values, assembled so that no scanner mistakes this file for a leak.
PW = "Hunter2" + "Passw0rd"
HEX40 = "c328a72c5e5b77518b1018f134a069e3" + "fab8c3bf"
AWS_ID = "AKIA" + "Q3EGRDMT6WKXNZ2F"
AWS_SECRET = "faqDeMqG3omjMyXHCabM6JOF8EFd0Nhc" + "y+1kGD2V"
B64_LINES = [f"MIIEow{i:02d}IBAAKCAQEAx7Qm2Jk3Lp9Vn4Rt6Wy8Za1Bc3De5Fg7Hi9Jk1Lm3No5Pq7Rs9Tu1Vw3Xy5" for i in range(5)]
KEY_BODY = "\n".join(B64_LINES)
BASIC = "YWRtaW46UzNjcmV0" + "UGFzc3cwcmQh"
SLACK_HOOK_TOKEN = "GE2sNVbYAbBHXgwE" + "TdIKnT30"
SENDGRID = "SG." + "y7KSE3eJdRtEqlzIq47EuV" + "." + "TBZWAM8AD5qH4VFZBqplIXdsNbXlwDPyniUMyiNlCKq"
DISCORD = "MTA5ODc2NTQzMjEwOTg3NjU0Mw" + ".ZTmxLo." + "ICfZfu3zMtWfNwD_G3SaoKfgFoeOASl1YCJlS2"
PYPI = "pypi-AgEIcHlwaS5vcmc" + "4R5gA2q-yfHwuEHFhvTS0lzNrr-9EEa4rSMrsEQp2vt7ZAoLbU-AfhJMzoN5ouP47ULvjfb"
TWILIO_SID = "AC1d00909c30065f" + "846d34530325fed10a"
TWILIO_TOKEN = "47b851832b6ec017" + "c1e1777155a0e9d8"
SAS_SIG = "V0fkxuxe0tGlhP5sSv07G4AO" + "kHs0GnG5mAldOKMgwKO"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        # key blocks, whole or cut
        (f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{KEY_BODY}\n-----END PGP PRIVATE KEY BLOCK-----", B64_LINES[2], ""),
        (f"$ tail key\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----\n$ ls", B64_LINES[2], "$ tail key"),
        (f"PuTTY-User-Key-File-3: ssh-rsa\nPrivate-Lines: 5\n{KEY_BODY}", B64_LINES[2], "Private-Lines: 5"),
        # vendor tokens
        ("app token xapp-1-A04BCDEF123-6717231430154-18d8962058765a6ca7cff00d", "6717231430154", "app token"),
        (f"curl -X POST https://hooks.slack.com/services/TJKK/BJBW/{SLACK_HOOK_TOKEN} -d x", SLACK_HOOK_TOKEN, "-d x"),
        (f"POST https://discord.com/api/webhooks/1098765/{HEX40}", HEX40, "POST https://discord.com"),
        (f"sg = SendGridAPIClient('{SENDGRID}')", SENDGRID[3:], "sg = SendGridAPIClient('"),
        (f"client.run('{DISCORD}')", DISCORD[-20:], "client.run("),
        (f"twine upload -u __token__ -p {PYPI}", PYPI, "twine upload"),
        ("api key SK" + "f27c7d9cf07255bc509cb3acac23db7c", "f27c7d9cf07255bc", "api key"),
        (f"client = Client('{TWILIO_SID}', '{TWILIO_TOKEN}')", TWILIO_TOKEN, TWILIO_SID),
        # AWS secret keys known by the access key id beside them, or by the CLI setting them
        (f"ACCESSKEY\t{AWS_ID}\t2024-01-01T00:00:00Z\t{AWS_SECRET}\tActive\tbob", AWS_SECRET, "Active\tbob"),
        (f"aws configure set aws_secret_access_key {AWS_SECRET}", AWS_SECRET, "aws configure set"),
        # authorization headers of every scheme
        ("Authorization: Bearer bwrHMbgcnKFLKnqXrBgCXLMiqcvmlyfbdcJxTDFe", "bwrHMbgcnKFLKnqX", "Authorization: Bearer"),
        (f"authorization: bearer  {AWS_SECRET}", AWS_SECRET, "authorization: bearer"),
        (f'curl -H "Authorization: Basic {BASIC}" https://api', BASIC, "https://api"),
        (f"Authorization: Token {HEX40}", HEX40, "Authorization: Token"),
        # passwords in URLs and on command lines
        (f"redis-cli -u redis://:{PW}@cache:6379/0", PW, "@cache:6379/0"),
        ("mysql://root:p@ssW0rd99@localhost/db", "ssW0rd99", "@localhost/db"),
        ("postgres://app:ab/cd+Ef9Gh@db/app", "cd+Ef9Gh", "postgres://app:"),
        (f"git clone https://{HEX40}@git.example.com/o/r", HEX40, "@git.example.com/o/r"),
        (f"SENTRY_DSN=https://{HEX40[:32]}@o1.ingest.sentry.io/1", HEX40[:32], "@o1.ingest.sentry.io/1"),
        (f"curl -u admin:{PW} https://api.example.com", PW, "curl -u admin:"),
        (f"curl --user admin:{PW} https://api.example.com", PW, "https://api.example.com"),
        (f"docker login -u bob -p {PW} registry.io", PW, "registry.io"),
        (f"mysql -u root -p{PW} app", PW, " app"),
        (f"psql --password {PW}", PW, "psql --password"),
        (f"vault login --token {HEX40}", HEX40, "vault login --token"),
        (f"https://acct.blob.core.windows.net/c?sv=2022-11-02&sp=r&sig={SAS_SIG}%3D", SAS_SIG, "sv=2022-11-02"),
        # credential formats
        (f"db.internal:5432:app:app:{PW}", PW, "db.internal:5432:app:app:"),
        (
            f"apiVersion: v1\nkind: Secret\ndata:\n  tls.key: {BASIC}\n  .dockerconfigjson: {HEX40}\n",
            HEX40,
            "kind: Secret",
        ),
        (f"kind: Secret\nstringData:\n  config.yaml: |\n    password: {PW}\n  user: bob\n", PW, "stringData:"),
        (f'{{"kind": "Secret", "data": {{"token": "{BASIC}"}}}}', BASIC, '"kind": "Secret"'),
        (f"data:\n  DATABASE_URL: {BASIC}\n", BASIC, "DATABASE_URL:"),
    ],
)
def test_a_secret_known_by_its_shape_or_place_is_redacted_and_its_surroundings_kept(
    text: str, secret: str, kept: str
) -> None:
    out = redact(text)
    assert secret not in out
    assert kept in out and "[REDACTED:" in out


ANT_KEY = "sk-ant-api03-" + "Zq8mN3vR7tYw2KpL5xHc9Jd4"
GH_TOKEN = "ghp_" + "Xv7Lq2Nw9Rt4Ys6Kp3Mz8Bc5Df1Gh0Jk2Lm4"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"config/backup_{ANT_KEY}.txt", ANT_KEY, "config/backup_"),
        (f"/srv/cache/tok_{GH_TOKEN}/index.json", GH_TOKEN, "/index.json"),
        (f"/data/{AWS_ID}_credentials.csv", AWS_ID, "_credentials.csv"),
        (f"cat /tmp/old_{ANT_KEY}.log", ANT_KEY, "cat /tmp/old_"),
    ],
)
def test_a_token_joined_to_a_word_by_an_underscore_as_in_a_file_name_is_redacted(
    text: str, secret: str, kept: str
) -> None:
    out = redact(text)
    assert secret not in out and kept in out and "[REDACTED:" in out


@pytest.mark.parametrize(
    "text",
    [
        "sk-button-primary-color-2",
        "pip install scikit-learn sk-learn-compatible-estimators",
        "Bearer authentication2024 is described in RFC6750-section-2",
        "Authorization: Bearer $TOKEN",
        "headers = {'Authorization': f'Bearer {token}'}",
        "git clone git@github.com:org/repo.git; https://user@host/x; ssh://git@host",
        "https://registry.npmjs.org/@babel:core@7.0.0 and http://localhost:8080/@scope/pkg",
        "email bob@example.com about postgres://db:5432/app",
        "docker run -u 1000:1000 img && git push -u origin main && curl -u $USER:$PASS https://x",
        "ssh -p 22 host; mkdir -p build/out; mysql -u root -p app",
        "docker login -u bob --password-stdin < pw.txt",
        "vault login --token $VAULT_TOKEN; pip install --token-file ~/.tok",
        "src/app.py:12:5: E501 line too long\n2024-01-01T12:00:00",
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  LOG_LEVEL: debug\n  config.json: |\n    {}",
        "commit 6a26e59d3c1f0b8e2a7d4c5b9f0e1d2c3b4a5968 (sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c)",
        'src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"',
        "arn:aws:iam::123456789012:role/Admin was assumed",
        '_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"\nfor line in lines:\n    parse(line)',
        "the --password flag prompts; the --username and --password options can't be combined",
        "task_sk-button-primary-2 my_ghp_helper npm_install_deps ASIA_PACIFIC_REGION_2024",
    ],
)
def test_look_alikes_in_ordinary_text_are_left_untouched(text: str) -> None:
    assert redact(text) == text
