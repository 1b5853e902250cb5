"""The deployment files: `make lint`'s checks catch a mistake in each, the image and the compose file
agree with the code, and every command of the README's "Deploying" is one the project ships."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from bot.cli import main as mentorat_bot
from bot.settings import DEFAULT_DATABASE_URL
from tools.check_compose import problems

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "compose.yaml").read_text()


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_dockerfile_passes_hadolint() -> None:
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_a_planted_mistake(tmp_path: Path) -> None:
    planted = tmp_path / "Dockerfile"
    planted.write_text(DOCKERFILE.replace("--no-install-recommends ", ""))
    result = hadolint(planted)
    assert result.returncode != 0
    assert "DL3015" in result.stdout


def planted_compose(tmp_path: Path, text: str) -> Path:
    """A compose file next to copies of what it refers to (the build context, the Caddyfile)."""
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return path


def test_the_compose_file_is_valid() -> None:
    assert problems(ROOT / "compose.yaml") == []


@pytest.mark.parametrize(
    ("mistake", "reported"),
    [
        (("replicas: 2", "replicas: two"), "services.bot.deploy.replicas: 'two' is not an integer"),
        (("\nvolumes:\n", "\nvolume:\n"), "'volume' does not match any of the regexes"),
        (("condition: service_healthy", "condition: healthy"), "'healthy' is not one of"),
        (("- caddy-data:/data", "- caddy-certs:/data"), "'caddy-certs' is not declared"),
        (("interval: 10s\n", "interval: 10s\n      interval: 5s\n"), "'interval' written twice"),
    ],
)
def test_the_compose_check_fails_on_a_planted_mistake(
    tmp_path: Path, mistake: tuple[str, str], reported: str
) -> None:
    assert COMPOSE.count(mistake[0]) == 1
    found = problems(planted_compose(tmp_path, COMPOSE.replace(*mistake)))
    assert any(reported in problem for problem in found), found


def test_make_lint_runs_both_checks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/hadolint Dockerfile" in lint
    assert "tools/check_compose.py compose.yaml" in lint


def test_the_image_label_gives_the_version_of_pyproject() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG VERSION={version}\n" in DOCKERFILE


def test_the_image_runs_migrations_then_the_bot_without_the_sandbox() -> None:
    assert 'CMD ["sh", "-c", "mentorat-bot migrate && exec mentorat-bot run"]' in DOCKERFILE
    assert "ALLOW_SANDBOX=false" in DOCKERFILE
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*mentorat-healthcheck\.py", DOCKERFILE, re.M)
    # The SQLite default (relative to WORKDIR) is in the volume.
    assert DEFAULT_DATABASE_URL.endswith("///data/mentorat.db")
    assert "WORKDIR /app\n" in DOCKERFILE
    assert 'VOLUME ["/app/data"]' in DOCKERFILE


def test_what_the_image_copies_is_let_through_by_dockerignore() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                source = source.removeprefix("./")
                assert (ROOT / source).exists(), source
                assert source in allowed, f"{source} is left out by .dockerignore"


def deploying_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert blocks, "no command in Deploying"
    return [command(line) for block in blocks for line in block.splitlines() if line.strip()]


def command(line: str) -> list[str]:
    """The words of a shell line, up to its first redirection or operator."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for word in lexer:
        if word in {"<", ">", "|", "&&", ";"}:
            break
        words.append(word)
    return words


def test_every_mentorat_bot_command_in_deploying_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked = 0
    for words in deploying_commands():
        if words[0] == "docker" and "exec" in words[1:3] and "mentorat-bot" in words:
            # docker [compose] exec [-i|-T] <container or service> mentorat-bot …
            after_exec = words[words.index("exec") + 1 :]
            target = next(i for i, word in enumerate(after_exec) if not word.startswith("-"))
            program = after_exec[target + 1 :]
            if program[0] != "mentorat-bot":
                continue
            arguments = program[1:]
            with pytest.raises(SystemExit) as exit_:
                mentorat_bot([*arguments, "--help"])
            assert exit_.value.code == 0, f"mentorat-bot {' '.join(arguments)}"
            checked += 1
    capsys.readouterr()
    assert checked >= 8


def test_every_service_and_container_in_deploying_exists() -> None:
    services = set(yaml.safe_load(COMPOSE)["services"])
    [run] = [
        words for words in deploying_commands() if words[:2] == ["docker", "run"] and "-d" in words
    ]
    container = run[run.index("--name") + 1]
    image = run[-1]
    assert f"docker build -t {image} " in (ROOT / "README.md").read_text()
    for words in deploying_commands():
        if words[:2] == ["docker", "compose"]:
            verb, *rest = [word for word in words[2:] if not word.startswith("-")]
            if verb in {"exec", "logs", "stop", "start"}:
                assert rest[0] in services, " ".join(words)
            for word in rest:
                if "=" in word and verb == "up":  # --scale bot=3
                    assert word.split("=")[0] in services
        elif words[:2] in (["docker", "exec"], ["docker", "logs"], ["docker", "stop"]):
            target = next(word for word in words[2:] if not word.startswith("-"))
            assert target == container, " ".join(words)
        elif words[:2] == ["docker", "cp"]:
            assert any(word.startswith(f"{container}:") for word in words)
        elif words[0] == "cp":
            assert (ROOT / words[1]).exists(), words[1]
        elif words[0] == "make":
            assert f"\n{words[1]}:" in (ROOT / "Makefile").read_text()
    # The backups' tools are in the images they run in.
    assert "sqlite3" in DOCKERFILE
    assert "image: postgres:" in COMPOSE
    assert "POSTGRES_USER: mentorat" in COMPOSE
    assert "POSTGRES_DB: mentorat" in COMPOSE
