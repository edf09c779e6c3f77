"""The deployment files in deploy/ hold together: compose validates, units and Procfile run real commands.

``docker compose config`` validates the compose file where Docker Compose is installed;
everywhere (CI included) the file, interpolated as Compose does, is validated against the
Compose Specification's JSON schema (vendored in tests/fixtures/compose-spec/, the schema
``docker compose`` itself checks against), and a structure check holds the promises the schema
cannot: the four services with health checks, start order on healthy dependencies, one image
for web and worker, every named volume and every dependency declared. Every ``peerline
<command>`` the files and the operator's guide name is a command the console script has.
"""
from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ivr import MAX_REQUEST_BYTES
from ivr.cli import make_cli
from tests.helpers import REPO

DEPLOY = REPO / "deploy"
GUIDE = REPO / "docs" / "operations.md"
COMPOSE_SCHEMA = REPO / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """The compose file's values with ${...} replaced as Compose replaces them; a missing required one raises."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        present = env.get(name)
        unset = present is None or (present == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        return present or ""

    return INTERPOLATION.sub(replace, value)


def schema_errors(spec: dict[str, Any]) -> list[str]:
    """Where a compose document breaks the Compose Specification's JSON schema, one line each."""
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(spec)]


def compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def test_compose_file_validates(tmp_path: Path) -> None:
    """The structure check always; ``docker compose config`` too where Docker Compose is installed."""
    check_compose_structure()
    if not compose_available():
        return
    env_file = DEPLOY / "peerline.env"
    created = not env_file.exists()
    if created:
        shutil.copy(DEPLOY / "peerline.env.example", env_file)
    try:
        result = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                                capture_output=True, text=True, env={"PATH": "/usr/bin:/usr/local/bin",
                                                                     "POSTGRES_PASSWORD": "x"})
    finally:
        if created:
            env_file.unlink()
    assert result.returncode == 0, result.stderr


def test_compose_file_matches_the_compose_specification_schema() -> None:
    """Interpolated with the one variable deploy/.env must give, the file is a valid Compose document."""
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose(), {})
    assert schema_errors(interpolate(compose(), {"POSTGRES_PASSWORD": "x"})) == []


@pytest.mark.parametrize(("path", "value", "complaint"), [
    (("services", "web", "healthcheck", "intervall"), "30s", "intervall"),
    (("services", "worker", "depends_on", "migrate", "condition"), "service_finished", "service_finished"),
    (("services", "postgres", "restart"), ["always"], "is not of type 'string'"),
    (("volumes", "media", "driverr"), "local", "driverr"),
])
def test_the_schema_check_catches_what_docker_compose_would_refuse(path: tuple[str, ...], value: Any,
                                                                     complaint: str) -> None:
    # A misspelt key, an unknown start condition, a wrong type: each is reported, not passed over.
    spec = interpolate(compose(), {"POSTGRES_PASSWORD": "x"})
    node = spec
    for key in path[:-1]:
        if node.get(key) is None:  # `media:` with nothing under it loads as None
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    assert any(complaint in line for line in schema_errors(spec)), schema_errors(spec)


def check_compose_structure() -> None:
    """What the compose file promises beyond its schema, checked without Docker."""
    spec = compose()
    services = spec["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
    assert {"postgres", "redis", "web", "worker", "migrate"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        check = services[name].get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
    # The migration runs once the database is healthy; web and worker start after it succeeded.
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy"
    # One image for web, worker and migrate (the YAML anchor), built from the Containerfile.
    assert services["web"]["image"] == services["worker"]["image"] == services["migrate"]["image"]
    assert services["web"]["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
    assert (DEPLOY / ".." / services["web"]["build"]["dockerfile"]).resolve().is_file()
    commands = {name: services[name]["command"] for name in ("migrate", "web", "worker")}
    assert commands["migrate"] == ["peerline", "db", "upgrade"]
    assert commands["worker"] == ["peerline", "worker"]
    assert commands["web"][:2] == ["peerline", "serve"]
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgresql://peerline:")
    assert "@postgres:5432/peerline" in services["web"]["environment"]["DATABASE_URL"]
    assert services["web"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    # Every named volume used is declared.
    used = {mount.split(":", 1)[0] for service in services.values() for mount in service.get("volumes", [])
            if not mount.startswith((".", "/"))}
    assert used <= set(spec["volumes"])
    # The settings file it reads exists as an example with every variable the services override.
    example = (DEPLOY / "peerline.env.example").read_text()
    for variable in ("PUBLIC_BASE_URL", "PEERLINE_DATA_KEY", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER",
                     "METRICS_TOKEN"):
        assert re.search(rf"^{variable}=", example, flags=re.M), variable


def commands_in(text: str) -> list[list[str]]:
    """Every ``peerline ...`` command line in a text (code spans, unit ExecStart, Procfile)."""
    found = []
    for match in re.finditer(r"(?:^|`|/bin/|: |\$ |&& )peerline ([a-z][a-z-]+(?: [a-z][a-z-]+)?)", text, flags=re.M):
        found.append(match[1].split())
    # The exec form of compose and the Containerfile: ["peerline", "db", "upgrade"]
    for match in re.finditer(r'\["peerline", "([a-z-]+)"(?:, "([a-z-]+)")?', text):
        found.append([word for word in (match[1], match[2]) if word])
    return found


@pytest.mark.parametrize("name", ["peerline-web.service", "peerline-worker@.service", "Procfile", "compose.yaml",
                                  "Containerfile", "../docs/operations.md"])
def test_every_peerline_command_named_exists(name: str) -> None:
    cli = make_cli()
    names = commands_in((DEPLOY / name).read_text())
    assert names, name
    for words in names:
        command = cli.commands.get(words[0])
        assert command is not None, f"{name}: peerline {words[0]}"
        group_commands = getattr(command, "commands", None)
        if group_commands is not None and len(words) > 1:
            assert words[1] in group_commands, f"{name}: peerline {' '.join(words)}"


@pytest.mark.parametrize(("unit", "command"), [("peerline-web.service", "serve"), ("peerline-worker@.service", "worker")])
def test_systemd_units_run_the_line_as_its_own_user_and_restart(unit: str, command: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string((DEPLOY / unit).read_text())
    service = parser["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/peerline") and argv[1] == command
    assert service["User"] == "peerline" and service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/peerline/peerline.env"
    assert service["Environment"] == "PEERLINE_INSTANCE_PATH=/var/lib/peerline"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if command == "worker":
        # Longer than a job's longest database statement (300 s), so a stop lets the job finish.
        assert int(service["TimeoutStopSec"]) > 300


def test_procfile_has_release_web_and_worker() -> None:
    lines = dict(line.split(":", 1) for line in (DEPLOY / "Procfile").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert {k: shlex.split(v)[:2] for k, v in lines.items()} == {
        "release": ["peerline", "db"], "web": ["peerline", "serve"], "worker": ["peerline", "worker"]}


def test_proxies_limit_the_body_to_what_the_app_accepts_and_terminate_tls() -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"client_max_body_size {MAX_REQUEST_BYTES // 1024}k;" in nginx
    # `http2 on;` is unknown to the nginx of Debian 12 and Ubuntu 24.04 (nginx -t fails there).
    assert "listen 443 ssl http2;" in nginx and "http2 on;" not in nginx
    assert "ssl_certificate " in nginx and "return 301 https://" in nginx
    # Certificate renewals over http still reach the folder certbot writes its challenge to.
    assert re.search(r"location /\.well-known/acme-challenge/ \{\s*root /var/www/html;", nginx)
    assert "certbot certonly --webroot -w /var/www/html" in GUIDE.read_text()
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert f"max_size {MAX_REQUEST_BYTES // 1024}KB" in caddy
    # Both send to the port the web unit and the compose web service listen on.
    assert "127.0.0.1:8000" in nginx and "127.0.0.1:8000" in caddy
    assert "--port 8000" in (DEPLOY / "peerline-web.service").read_text()


def test_proxies_forward_the_browsers_address_and_scheme_and_the_settings_trust_one_hop() -> None:
    # Without them the sign-in pause per address would pause every staff member at once.
    nginx = (DEPLOY / "nginx.conf").read_text()
    proxied = [block for block in re.findall(r"location [^{]*\{[^}]*\}", nginx) if "proxy_pass" in block]
    assert len(proxied) == 2, proxied  # the app and /metrics
    for location in proxied:
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in location, location
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in location, location
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert "header_up X-Forwarded-For {remote_host}" in caddy and "header_up X-Forwarded-Proto {scheme}" in caddy
    example = (DEPLOY / "peerline.env.example").read_text()
    assert re.search(r"^PEERLINE_TRUSTED_PROXIES=1$", example, flags=re.M)
    assert "PEERLINE_TRUSTED_PROXIES" in (DEPLOY.parent / "docs" / "operations.md").read_text()


def test_container_image_runs_as_a_user_with_a_health_check() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, flags=re.M)
    assert re.search(r"^USER peerline$", text, flags=re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'CMD ["peerline", "serve"' in text
    # Every package the project installs is copied into the image.
    for package in ("callflows", "ivr", "models", "queues", "transcription"):
        assert f"COPY {package} ./{package}" in text
