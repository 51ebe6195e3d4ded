"""A secret-named variable set to a literal has its value redacted, in every language's syntax; set to code
(a call, an attribute, a type, a reference, its own name) it is left exactly as written."""

from __future__ import annotations

import pytest

from ultramax.redact import redact

PW = "Hunter2" + "Passw0rd"
HEX = "5924754ec21ef66b01d4" + "921da2e055c90eb6f2ae"
B64 = "Ym9iOkh1bnRlcjJQ" + "YXNzdzByZA=="


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"DB_PASS={PW}", PW, "DB_PASS="),
        (f"SMTP_PASS={PW}\nSMTP_HOST=mail.example.com", PW, "SMTP_HOST=mail.example.com"),
        (f"DB_PW={PW}", PW, "DB_PW="),
        (f"SECRET_KEY_BASE={HEX}", HEX, "SECRET_KEY_BASE="),
        (f"APP_KEY=base64:{B64}", B64, "APP_KEY="),
        (f"ENCRYPTION_KEY={HEX}", HEX, "ENCRYPTION_KEY="),
        (f"MASTER_KEY={HEX}", HEX, "MASTER_KEY="),
        (f"SIGNING_KEY={HEX}", HEX, "SIGNING_KEY="),
        (f"AUTH={HEX}", HEX, "AUTH="),
        (f"STRIPE_KEY={HEX}", HEX, "STRIPE_KEY="),
        (f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={B64};EndpointSuffix=x", B64, "AccountName=acct"),
        ('DB_PASSWORD="correct horse battery staple"', "horse battery", 'DB_PASSWORD="'),
        ("password: 'my secret pass phrase'", "secret pass", "password: '"),
        (f'token = "{HEX}\nnext_line = 1', HEX, "next_line = 1"),
        (f'{{\\"password\\": \\"{PW}\\"}}', PW, '{\\"password\\": \\"'),
        (f"'password' => '{PW}',", PW, "'password' => '"),
        (f'password := "{PW}"', PW, "password := "),
        ('{"password": "pw"}', '"pw"', '{"password": '),
        (f"API_KEY=\\\n  {HEX}", HEX, "API_KEY=\\"),
        (f'{{"auths": {{"r.io": {{"auth": "{B64}"}}}}}}', B64, '"auth": "'),
        (f"_auth={B64}", B64, "_auth="),
        (f"//registry.example.com/:_authToken={HEX}", HEX, "//registry.example.com/:_authToken="),
        (f"connect(user='app', password={PW})", PW, "connect(user='app', password="),
        (f"Client(token=tok, password={PW})", PW, "Client(token=tok, password="),
        ("PGPASSWORD=s3cr3t psql -h db", "s3cr3t", " psql -h db"),
        ("password: letmein", "letmein", "password: "),
        (f"my token is {HEX}", HEX, "my token is "),
        (f"the secret: {HEX}", HEX, "the secret: "),
        (f"+  password: {PW}", PW, "+  password: "),
    ],
)
def test_a_secret_value_is_redacted_whatever_the_syntax_and_the_rest_kept(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out and "[REDACTED:" in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "def login(username: str, password: str) -> Token:\n    token: Optional[str] = None",
        "password: str,",
        "token = get_token()",
        "self.password = password",
        'api_key = os.environ["API_KEY"]',
        "secret = settings.SECRET",
        "client = Client(api_key=api_key, token=self.token)",
        "const token = await fetchToken();",
        "interface User { password: string; token?: string }",
        "environment:\n  POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}",
        "credentials: ~/.aws/credentials",
        "secret: projects/p/secrets/db-pass/versions/latest",
        "token: ${{ secrets.GITHUB_TOKEN }}\npassword: ${{ secrets.PW }}",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db\n        key: password",
        "password: must be at least 12 characters",
        "Add password field validation and token refresh; the secret to success is tests.",
        "max_tokens=1024 tokenizer=cl100k token_count=12",
        "BYTES_PER_TOKEN = 3.5",
        'password = getpass.getpass("Password: ")',
        'print("token:", token)',
        "password = models.CharField(max_length=128)",
        "'password' => 'required|string|min:8|confirmed',",
        "token: TokenOpt = None,",
        "token = Operator",
        "sbx = Pool.connect(pool, token=token).create()",
        'EXPIRED_TOKEN = "expired_token"\nENV_API_KEY = "ANTHROPIC_API_KEY"',
        "password: !Ref DbPassword",
        "api_key=..., # the key",
        "hf spaces secrets add my-space -s OPENAI_API_KEY=sk-... -s ANTHROPIC_API_KEY=sk-...",
        "Pass `api_key=`, `auth_token=` or `credentials=` to the client.",
        'build_headers(token="hf_***")',
        "auth: true\nauth = HTTPBasicAuth(user, password)",
        "PWD=/home/dev/work/demo OLDPWD=/home/dev",
    ],
)
def test_code_that_names_a_secret_without_holding_one_is_left_untouched(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("the db password is hunter2", "hunter2", "the db password is "),
        ("the root password was s3cret! so rotate it", "s3cret!", " so rotate it"),
        ("the staging password is hunter2-Billing!", "Billing", "the staging password is "),
        ("the password for staging is Tr0ub4dor&3.", "Tr0ub4dor&3", "the password for staging is "),
        ("the api key of the prod db is 9f8e7d6c5b4a", "9f8e7d6c5b4a", "the api key of the prod db is "),
    ],
)
def test_a_password_told_in_a_sentence_is_redacted_and_the_sentence_kept(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out and "[REDACTED:secret]" in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "the password is required",
        "the password is in the vault",
        "the password was changed yesterday",
        "reset your password in settings",
        "The secret is out: we ship Friday",
        "the secret is /run/secrets/db",
        "the token is abc",
    ],
)
def test_a_sentence_about_a_password_that_holds_none_is_left_as_written(text: str) -> None:
    assert redact(text) == text
