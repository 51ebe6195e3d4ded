"""Interpreter one-liners: what ``python -c``, ``node -e``, ``perl -e``, ``ruby -e``, ``php -r``, ``awk``,
``osascript -e`` and friends would do, where the intent is readable from the code.

The code is not executed and not fully parsed: calls that run shell commands (``os.system``, ``subprocess``,
``child_process.execSync``, ``system``, backticks ...), delete files (``shutil.rmtree``, ``fs.rmSync``,
``FileUtils.rm_rf`` ...) or read and write files are found with their literal arguments and turned into
*actions* the shell analyser treats like ordinary commands:

- ``("shell", text)``: a shell command line, analysed recursively;
- ``("argv", word, ...)``: one command as an argument vector (``rm -rf PATH`` for a recursive delete);
- ``("fact", name)``: something only code can do (``reverse_shell``, ``remote_code``, ``exec_decoded``,
  ``inline_dynamic_exec`` when the command run is built at run time).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ultramax.safety.pathclass import DYN, expand_user

if TYPE_CHECKING:
    from ultramax.safety.shell import Word

__all__ = ["actions", "awk_program", "code_argument", "inplace_files", "language", "path_names"]

Action = tuple[str, ...]


def language(name: str) -> str:
    if name.startswith(("python", "pypy")):
        return "python"
    if name in ("node", "nodejs", "bun", "deno"):
        return "js"
    if name in ("rscript",):
        return "r"
    if name in ("pwsh", "powershell"):
        return "pwsh"
    if name == "luajit":
        return "lua"
    return name


def code_argument(lang: str, args: Sequence[Word]) -> tuple[Word | None, Word | None, str | None]:
    """(inline code, script file, where the code comes from: "arg" | "file" | "stdin" | None)."""
    from ultramax.safety.shell import Word

    codes: list[Word] = []
    i = 0
    n = len(args)
    while i < n:
        text = args[i].text
        nxt = args[i + 1] if i + 1 < n else None
        if text == "--":
            i += 1
            break
        if lang == "python":
            if text == "-":
                return None, None, "stdin"
            if text.startswith("-") and not text.startswith("--"):
                letters = text[1:]
                if "c" in letters:
                    after = letters[letters.index("c") + 1 :]
                    code = Word(after) if after else nxt
                    return code, None, "arg" if code is not None else None
                if letters[:1] == "m":
                    return None, None, None
                if letters[:1] in ("W", "X") and len(letters) == 1:
                    i += 1
                i += 1
                continue
            if text.startswith("--"):
                i += 1
                continue
            break
        if lang == "js":
            if text in ("-e", "--eval", "-p", "--print", "-pe", "-ep") and nxt is not None:
                codes.append(nxt)
                i += 2
                continue
            if text.startswith(("--eval=", "--print=")):
                codes.append(Word(text.split("=", 1)[1]))
                i += 1
                continue
            if text in ("eval", "-c") and nxt is not None and not codes:
                codes.append(nxt)
                i += 2
                continue
            if text in ("-r", "--require", "--import", "--loader") and nxt is not None:
                i += 2
                continue
            if text == "-":
                return None, None, "stdin"
            if text.startswith("-") or text in ("run", "x"):
                i += 1
                continue
            break
        if lang in ("perl", "ruby", "php", "lua", "r", "osascript", "pwsh"):
            flag = {"php": "r", "pwsh": "c"}.get(lang, "e")
            if text.startswith("-") and not text.startswith("--") and len(text) > 1:
                letters = text[1:]
                if lang == "pwsh" and letters.lower() in ("c", "command"):
                    if nxt is not None:
                        codes.append(nxt)
                    i += 2
                    continue
                if letters[-1:] in (flag, flag.upper()) and re.fullmatch(r"[a-zA-Z]+", letters) and nxt is not None:
                    codes.append(nxt)
                    i += 2
                    continue
                if letters in ("r", "I", "M", "f") and lang in ("ruby", "perl", "php") and nxt is not None:
                    if lang == "php" and letters == "f":
                        return None, nxt, "file"
                    i += 2
                    continue
                i += 1
                continue
            if text == "-":
                return None, None, "stdin"
            if text.startswith("--"):
                i += 1
                continue
            break
        break
    if len(codes) == 1:
        return codes[0], None, "arg"
    if codes:
        subs = tuple(i for c in codes for i in c.subs)
        return Word("\n".join(c.text for c in codes), subs=subs), None, "arg"
    if i < n:
        return None, args[i], "file"
    return None, None, "stdin"


def inplace_files(lang: str, args: Sequence[Word]) -> list[Word]:
    """The files ``perl -i``/``ruby -i`` edit in place (the arguments after the code), or [] without ``-i``."""
    if lang not in ("perl", "ruby"):
        return []
    inplace = False
    code_seen = False
    files: list[Word] = []
    i = 0
    while i < len(args):
        text = args[i].text
        if text == "--":
            files.extend(args[i + 1 :])
            break
        if text.startswith("-") and not text.startswith("--") and len(text) > 1 and not code_seen:
            letters = text[1:]
            if letters[:1] not in ("I", "M", "m", "r", "x", "0") and re.fullmatch(r"[a-hj-zA-Z]*i.*", letters):
                inplace = True
            if re.fullmatch(r"[a-zA-Z]*[eE]", letters) and "i" not in letters[:-1]:
                code_seen = True
                i += 2
                continue
            i += 2 if letters in ("I", "M", "m", "r") else 1
            continue
        if not code_seen:
            code_seen = True  # the script file
        else:
            files.append(args[i])
        i += 1
    return files if inplace else []


def awk_program(args: Sequence[Word]) -> Word | None:
    i = 0
    while i < len(args):
        text = args[i].text
        if text == "--":
            i += 1
            break
        if text in ("-f", "--file"):
            return None
        if text in ("-F", "-v", "--assign", "--field-separator"):
            i += 2
            continue
        if text.startswith("-") and len(text) > 1:
            i += 1
            continue
        break
    return args[i] if i < len(args) else None


# -- finding calls ---------------------------------------------------------------------------------------
_STRING = re.compile(
    r"""(?P<prefix>[rRbBuUfF]{0,2})(?P<q>'''|\"\"\"|'|"|`)""",
)

_HOME_EXPR = re.compile(
    r"""os\.path\.expanduser\(\s*(['"])~\1\s*\)|(?:pathlib\.)?Path\.home\(\)|os\.environ\[\s*['"]HOME['"]\s*\]"""
    r"""|os\.environ\.get\(\s*['"]HOME['"][^)]*\)|os\.getenv\(\s*['"]HOME['"][^)]*\)"""
    r"""|require\(\s*['"](?:node:)?os['"]\s*\)\.homedir\(\)|\bos\.homedir\(\)|\bhomedir\(\)|process\.env\.HOME"""
    r"""|process\.env\[\s*['"]HOME['"]\s*\]|Dir\.home|ENV\[\s*['"]HOME['"]\s*\]|\$ENV\{\s*['"]?HOME['"]?\s*\}"""
    r"""|getenv\(\s*['"]HOME['"]\s*\)|\$_SERVER\[\s*['"]HOME['"]\s*\]|File\.expand_path\(\s*['"]~['"]\s*\)"""
    r"""|Deno\.env\.get\(\s*['"]HOME['"]\s*\)|Sys\.getenv\(\s*['"]HOME['"]\s*\)|\$env:(?:HOME|USERPROFILE)"""
)
HOME_MARK = "\x02"


def _literals(text: str) -> Iterator[tuple[int, int, str]]:
    """String literals in code: (start, end, value). Escapes handled loosely; enough to read intent."""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "#" and (i == 0 or text[i - 1] in " \t\n;"):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if ch not in "'\"`":
            i += 1
            continue
        quote = text[i : i + 3] if text[i : i + 3] in ("'''", '"""') else ch
        j = i + len(quote)
        buf: list[str] = []
        while j < n and not text.startswith(quote, j):
            if text[j] == "\\" and j + 1 < n:
                nxt = text[j + 1]
                buf.append({"n": "\n", "t": "\t", "x": "\\x", "0": "\\0"}.get(nxt, nxt))
                j += 2
                continue
            buf.append(text[j])
            j += 1
        value = "".join(buf)
        if "\\x" in value or "\\0" in value:
            value = _decode_escapes(value)
        yield i, j + len(quote), value
        i = j + len(quote)


def _decode_escapes(value: str) -> str:
    def octal(m: re.Match[str]) -> str:
        return chr(int(m.group(1), 8))

    value = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
    return re.sub(r"\\0?([0-7]{1,3})", octal, value)


def _balanced(text: str, start: int) -> tuple[str, int]:
    """The text inside the parenthesis opening at ``start`` (or up to the end of the statement)."""
    if start < len(text) and text[start] == "(":
        depth = 0
        i = start
        while i < len(text):
            ch = text[i]
            if ch in "'\"`":
                quote = text[i : i + 3] if text[i : i + 3] in ("'''", '"""') else ch
                j = text.find(quote, i + len(quote))
                while j > 0 and text[j - 1] == "\\" and quote == ch:
                    j = text.find(quote, j + 1)
                i = len(text) if j < 0 else j + len(quote)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth == 0:
                    return text[start + 1 : i], i + 1
            i += 1
        return text[start + 1 :], len(text)
    end = len(text)
    for stop in (";", "\n", " if ", " unless ", " or ", " and ", "}"):
        k = text.find(stop, start)
        if 0 <= k < end:
            end = k
    return text[start:end], end


def _split_top(args: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    i = 0
    while i < len(args):
        ch = args[i]
        if ch in "'\"`":
            j = i + 1
            while j < len(args) and args[j] != ch:
                j += 2 if args[j] == "\\" else 1
            cur.append(args[i : j + 1])
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _only_literal(arg: str) -> str | None:
    """The value of ``arg`` when it is one string literal (optionally ``.split()``, a ``%`` prefix, ``f`` ...)."""
    arg = arg.strip()
    arg = re.sub(r"\.split\(\s*\)$|\.strip\(\)$", "", arg)
    lits = list(_literals(arg))
    if len(lits) == 1 and lits[0][0] <= 2 and lits[0][1] == len(arg) and "${" not in lits[0][2]:
        return lits[0][2]
    return None


def _list_literal(arg: str) -> list[str] | None:
    arg = arg.strip()
    if not (arg.startswith(("[", "%w[", "%w(")) and arg.endswith(("]", ")"))):
        return None
    inner = arg[arg.index(arg.lstrip("%w")[0]) + 1 : -1] if arg.startswith("%w") else arg[1:-1]
    if arg.startswith("%w"):
        return inner.split()
    items = []
    for part in _split_top(inner):
        value = _only_literal(part)
        items.append(value if value is not None else DYN)
    return items


_GLUE_WORDS = frozenset(
    [
        "os",
        "path",
        "join",
        "resolve",
        "File",
        "Path",
        "pathlib",
        "expanduser",
        "expand_path",
        "abspath",
        "realpath",
        "normpath",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "recursive",
        "force",
        "ignore_errors",
        "str",
        "String",
        "require",
        "homedir",
        "fs",
        "node",
        "joinpath",
        "Pathname",
        "new",
        "to_s",
        "toString",
        "sep",
    ]
)


_ASSIGN = re.compile(
    r"(?:^|[;\n{])\s*(?:const\s+|let\s+|var\s+|my\s+|local\s+)?[$@]?([A-Za-z_]\w*)\s*=(?![=~>])\s*([^;\n]+)"
)


def path_names(code: str, home: str) -> dict[str, str]:
    """Variables the code assigns a known path to (``p = os.path.expanduser('~/.x')``, ``my $f = "~/.x"``)."""
    names: dict[str, str] = {}
    for m in _ASSIGN.finditer(code):
        expr = m.group(2).strip()
        if not list(_literals(expr)) and not _HOME_EXPR.search(expr):
            continue
        path = path_of(expr, home)
        if path.startswith("/") and DYN not in path:
            names[m.group(1)] = path
    return names


def path_of(arg: str, home: str, names: dict[str, str] | None = None) -> str:
    """The path an expression in code names: literals, HOME expressions and joins; ``DYN`` when unknown.
    ``names`` are variables known to hold a path (``path_names``)."""
    bare = arg.strip().lstrip("$")
    if names and bare in names:
        return names[bare]
    marked = _HOME_EXPR.sub(HOME_MARK, arg)
    ordered: list[str] = []
    glue: list[str] = []
    pos = 0
    for start, end, value in _literals(marked):
        between = marked[pos:start]
        glue.append(between)
        ordered.extend(HOME_MARK for _ in range(between.count(HOME_MARK)))
        ordered.append(value)
        pos = end
    tail = marked[pos:]
    glue.append(tail)
    ordered.extend(HOME_MARK for _ in range(tail.count(HOME_MARK)))
    if not ordered:
        return DYN
    result = ""
    for tok in ordered:
        value = home if tok == HOME_MARK else expand_user(tok, home)
        if not result:
            result = value
        elif value.startswith("/"):
            result = value if tok == HOME_MARK else result.rstrip("/") + value
        else:
            result = result.rstrip("/") + "/" + value
    unknown = [w for w in re.findall(r"[A-Za-z_$@]\w*", " ".join(glue)) if w not in _GLUE_WORDS]
    if unknown:
        return result.rstrip("/") + "/" + DYN if result.startswith("/") else DYN
    return result


# -- per language ---------------------------------------------------------------------------------------
_SHELL_CALLS: dict[str, str] = {
    "python": r"(?:\b(?:os\.system|os\.popen|subprocess\.(?:run|call|check_call|check_output|Popen|getoutput|"
    r"getstatusoutput)|commands\.getoutput|pty\.spawn|os\.exec[lv]p?e?|os\.spawn[lv]p?e?|sp\.(?:run|call|"
    r"check_call|check_output|Popen))|__import__\(\s*['\"](?:os|subprocess)['\"]\s*\)\s*\.\s*(?:system|popen|run|call|"
    r"check_call|check_output|Popen|getoutput))\s*(?=\()",
    "js": r"(?:\b(?:child_process|cp|childProcess|proc|require\(\s*['\"](?:node:)?child_process['\"]\s*\))\s*\.\s*"
    r"(?:execSync|exec|spawnSync|spawn|execFileSync|execFile)|(?<![.\w])(?:execSync|spawnSync|execFileSync|"
    r"exec|spawn)|\bBun\s*\.\s*spawn(?:Sync)?|\bDeno\s*\.\s*run|new\s+Deno\s*\.\s*Command)\s*(?=\()",
    "perl": r"(?<![\w$@%])(?:system|exec)\b\s*",
    "ruby": r"(?<![\w.])(?:system|exec|spawn|IO\s*\.\s*popen|Open3\s*\.\s*(?:capture2e?|capture3|popen3|popen2e?)|"
    r"Kernel\s*\.\s*(?:system|exec|spawn))\b\s*",
    "php": r"\b(?:system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec)\s*(?=\()",
    "lua": r"\b(?:os\.execute|io\.popen)\s*",
    "r": r"\b(?:system2?|shell)\s*(?=\()",
    "awk": r"\bsystem\s*(?=\()",
}
_BACKTICKS = {"perl", "ruby", "php"}
_DELETE: dict[str, list[tuple[str, bool]]] = {
    "python": [
        (r"\b(?:shutil\.)?rmtree\s*(?=\()", True),
        (r"\bos\.(?:remove|unlink|rmdir|removedirs)\s*(?=\()", False),
        (r"\bsend2trash\s*(?=\()", False),
    ],
    "js": [
        (
            r"\b(?:fs|fse|fsExtra|fsp|promises|require\(\s*['\"](?:node:)?fs(?:-extra|/promises)?['\"]\s*\)"
            r"(?:\.promises)?)\s*\.\s*(?:remove|removeSync|emptyDir|emptyDirSync)\s*(?=\()",
            True,
        ),
        (r"\brimraf(?:\.sync|Sync)?\s*(?=\()", True),
        (
            r"\b(?:fs|fse|fsExtra|fsp|promises|require\(\s*['\"](?:node:)?fs(?:-extra|/promises)?['\"]\s*\)"
            r"(?:\.promises)?)\s*\.\s*(?:rmSync|rmdirSync|unlinkSync|rm|rmdir|unlink)\s*(?=\()",
            False,
        ),
        (r"(?<![.\w])(?:rmSync|rmdirSync|unlinkSync)\s*(?=\()", False),
        (r"\bDeno\s*\.\s*remove(?:Sync)?\s*(?=\()", False),
    ],
    "ruby": [
        (r"\bFileUtils\s*\.\s*(?:rm_rf|rm_r|remove_dir|remove_entry_secure|remove_entry|rmtree)\b\s*", True),
        (r"\bFileUtils\s*\.\s*(?:rm|rm_f|remove|safe_unlink)\b\s*", False),
        (r"\b(?:File|Dir)\s*\.\s*(?:delete|unlink|rmdir)\b\s*", False),
    ],
    "perl": [
        (r"\b(?:rmtree|remove_tree)\b\s*", True),
        (r"(?<![\w$@%])(?:unlink|rmdir)\b\s*", False),
    ],
    "php": [(r"\b(?:unlink|rmdir)\s*(?=\()", False)],
    "lua": [(r"\bos\.remove\s*", False)],
    "r": [(r"\bunlink\s*(?=\()", True), (r"\bfile\.remove\s*(?=\()", False)],
    "pwsh": [(r"(?i)\b(?:Remove-Item|rm|del|rmdir|ri)\b\s+", True)],
}
_READ: dict[str, list[tuple[str, str]]] = {
    "python": [(r"(?<![.\w])open\s*(?=\()", "open"), (r"\bio\.open\s*(?=\()", "open")],
    "js": [
        (r"\b(?:readFileSync|readFile)\s*(?=\()", "cat"),
        (
            r"\b(?:writeFileSync|writeFile|appendFileSync|"
            r"appendFile)\s*(?=\()",
            "tee",
        ),
    ],
    "ruby": [(r"\b(?:File|IO)\s*\.\s*(?:read|readlines|binread)\b\s*", "cat"), (r"\bFile\s*\.\s*write\b\s*", "tee")],
    "php": [(r"\bfile_get_contents\s*(?=\()", "cat"), (r"\bfile_put_contents\s*(?=\()", "tee")],
}
_PATH_METHOD = re.compile(r"\b(?:pathlib\.)?Path\s*(?=\()")
_REVERSE = {
    "python": (r"\bsocket\b", r"subprocess|pty\.spawn|dup2|/bin/(?:ba)?sh|os\.system"),
    "perl": (r"\bSocket\b|IO::Socket", r"\bexec\b|\bsystem\b|/bin/(?:ba)?sh|STDIN"),
    "ruby": (r"TCPSocket|Socket\.new", r"\bexec\b|\bspawn\b|\bsystem\b|/bin/(?:ba)?sh|IO\.popen"),
    "php": (r"fsockopen|socket_create|stream_socket_client", r"exec|proc_open|popen|/bin/(?:ba)?sh|system"),
    "js": (
        r"net\.Socket|net\.connect|createConnection|require\(\s*['\"](?:node:)?net['\"]\s*\)",
        r"child_process|spawn|/bin/(?:ba)?sh",
    ),
    "lua": (r"socket", r"os\.execute|io\.popen|/bin/(?:ba)?sh"),
}
_FETCH = (
    r"urlopen|urllib|requests\.get|httpx|http\.client|fetch\s*\(|https?\.get|Net::HTTP|URI\.open|open-uri|LWP|"
    r"file_get_contents\(\s*['\"]https?:|curl_exec|HTTP::Tiny|Invoke-WebRequest|iwr\b|DownloadString"
)
_EXEC = r"\bexec\s*\(|\beval\s*\(|new\s+Function|vm\.run|\beval\b|Invoke-Expression|\biex\b|instance_eval"
_SEND = (
    r"requests\.(?:post|put|patch)|urlopen|http\.client|urllib\.request\.Request|fetch\s*\(|https?\.request|"
    r"axios\.(?:post|put)|Net::HTTP|LWP|HTTP::Tiny|curl_exec|socket\.(?:socket|create_connection)|\.sendall\("
)
_SECRET_SOURCE = (
    r"os\.environ\b(?!\s*(?:\[|\.get))|dict\(\s*os\.environ|process\.env\b(?!\s*[.\[])|"
    r"JSON\.stringify\(\s*process\.env|\bENV\.to_h|%ENV\b|\.ssh/id_|\.aws/credentials|\.env['\"]|getenv\(\s*\)"
)
_DECODE = (
    r"b64decode|base64\.|Buffer\.from\([^)]*base64|decode64|base64_decode|unpack\(\s*['\"]m|FromBase64String|"
    r"codecs\.decode|\.decode\(\s*['\"](?:base64|hex|rot13)"
)


def actions(lang: str, code: str, home: str) -> list[Action]:
    """What the code would do, as far as it can be read."""
    if len(code) > 20000:
        code = code[:20000]
    found: list[Action] = []
    if lang == "python":
        code = _python_imports(code)
    names = path_names(code, home)
    if lang == "osascript":
        for m in re.finditer(r"do shell script\s+(\"(?:\\.|[^\"\\])*\"|'[^']*')", code):
            value = _only_literal(m.group(1))
            if value is not None:
                found.append(("shell", value))
        return found
    pattern = _SHELL_CALLS.get(lang)
    if pattern:
        for m in re.finditer(pattern, code):
            found.extend(_shell_call(lang, code, m.end()))
    if lang in _BACKTICKS or lang == "js":
        for m in re.finditer(r"`([^`]*)`", code):
            if lang == "js" and not re.search(r"\$\s*$|\bsh\s*$|\bexecSync\(\s*$", code[: m.start()]):
                continue
            found.append(("shell", m.group(1)) if "${" not in m.group(1) and "#{" not in m.group(1) else
                         ("fact", "inline_dynamic_exec"))  # fmt: skip
        for m in re.finditer(r"(?:%x|qx)\s*([({\[|/!])", code):
            close = {"(": ")", "{": "}", "[": "]"}.get(m.group(1), m.group(1))
            end = code.find(close, m.end())
            if end > 0:
                found.append(("shell", code[m.end() : end]))
    if lang == "awk":
        for m in re.finditer(r"\|\s*(\"(?:\\.|[^\"\\])*\")|(\"(?:\\.|[^\"\\])*\")\s*\|\s*getline", code):
            value = _only_literal(m.group(1) or m.group(2))
            if value is not None:
                found.append(("shell", value))
    for pat, recursive in _DELETE.get(lang, []):
        for m in re.finditer(pat, code):
            args, _ = _balanced(code, m.end())
            parts = _split_top(args)
            first = parts[0] if parts else ""
            is_rec = recursive or bool(re.search(r"recursive\s*[:=]\s*(?:true|TRUE|True)", args))
            if lang == "pwsh":
                is_rec = bool(re.search(r"(?i)-r(?:ecurse)?\b", args))
                first = re.sub(r"(?i)-(?:path|literalpath|recurse|force|r|fo)\b", " ", args).strip().split(" ")[0]
            path = path_of(first, home, names) if first else DYN
            found.append(("argv", "rm", "-rf", path) if is_rec else ("argv", "rm", "-f", path))
    if lang == "python":
        for m in _PATH_METHOD.finditer(code):
            args, end = _balanced(code, m.end())
            tail = code[end : end + 60]
            method = re.match(r"(?:\.(?:expanduser|resolve|absolute)\(\))*\.(unlink|rmdir|read_text|read_bytes|"
                              r"write_text|write_bytes)\(", tail)  # fmt: skip
            if method:
                path = path_of(args, home, names)
                verb = method.group(1)
                if verb in ("unlink", "rmdir"):
                    found.append(("argv", "rm", "-f", path))
                elif verb.startswith("read"):
                    found.append(("argv", "cat", path))
                else:
                    found.append(("argv", "tee", path))
    for pat, verb in _READ.get(lang, []):
        for m in re.finditer(pat, code):
            args, _ = _balanced(code, m.end())
            parts = _split_top(args)
            if not parts:
                continue
            path = path_of(parts[0], home, names)
            if verb == "open":
                mode = _only_literal(parts[1]) if len(parts) > 1 else "r"
                verb_now = "tee" if mode and any(c in mode for c in "wax+") else "cat"
            else:
                verb_now = verb
            if path.startswith(("http://", "https://")):
                continue
            found.append(("argv", verb_now, path))
    found.extend(_facts(lang, code))
    return found


_PY_MODULES = frozenset({"os", "subprocess", "shutil", "pathlib", "pty", "socket", "urllib.request", "requests",
                         "base64", "codecs", "commands"})  # fmt: skip


def _python_imports(code: str) -> str:
    """Undo import aliases so calls read as the module's own names: ``import subprocess as s; s.call(...)``
    becomes ``subprocess.call(...)``, ``from os import system; system(...)`` becomes ``os.system(...)``."""
    for module, alias in re.findall(r"\bimport\s+([\w.]+)\s+as\s+(\w+)", code):
        if module in _PY_MODULES:
            code = re.sub(rf"(?<![\w.]){re.escape(alias)}\s*\.", module + ".", code)
    for module, names in re.findall(r"\bfrom\s+([\w.]+)\s+import\s+([\w ,()]+)", code):
        if module not in _PY_MODULES:
            continue
        for item in names.replace("(", " ").replace(")", " ").split(","):
            parts = item.split()
            if not parts:
                continue
            name, alias = parts[0], parts[2] if len(parts) == 3 and parts[1] == "as" else parts[0]
            code = re.sub(rf"(?<![\w.]){re.escape(alias)}(?=\s*\()", f"{module}.{name}", code)
    return code


def _shell_call(lang: str, code: str, pos: int) -> list[Action]:
    args, _ = _balanced(code, pos)
    parts = _split_top(args)
    if not parts:
        return []
    first = parts[0]
    listed = _list_literal(first)
    if listed is not None:
        return [("argv", *listed)] if listed else []
    value = _only_literal(first)
    if value is None:
        return [("fact", "inline_dynamic_exec")]
    if len(parts) > 1:
        second = _list_literal(parts[1])
        if second is not None:
            return [("argv", value, *second)]
        rest = [_only_literal(p) for p in parts[1:]]
        if lang in ("perl", "ruby") and all(r is not None for r in rest) and not re.search(r"\s", value):
            return [("argv", value, *(r for r in rest if r is not None))]
    return [("shell", value)]


def _facts(lang: str, code: str) -> list[Action]:
    out: list[Action] = []
    reverse = _REVERSE.get(lang)
    if reverse and re.search(reverse[0], code) and re.search(reverse[1], code):
        out.append(("fact", "reverse_shell"))
    if re.search(_FETCH, code) and re.search(_EXEC, code):
        out.append(("fact", "remote_code"))
    if re.search(_DECODE, code) and re.search(_EXEC + r"|\bsystem\s*\(", code):
        out.append(("fact", "exec_decoded"))
    if re.search(_SEND, code) and re.search(_SECRET_SOURCE, code):
        out.append(("fact", "exfil_code"))
    return out
