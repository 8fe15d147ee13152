"""deploy/Dockerfile, checked statically (no Docker daemon here): pinned like the Makefile, not root, no
secret, and its commands are those the template's task definitions run."""

import re

from fe_platform.settings import PROJECT_ROOT
from fe_platform_tests.deploy_stack import load_template

DOCKERFILE = (PROJECT_ROOT / "deploy" / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.lstrip().startswith("#")]


def instructions(kind: str) -> list[str]:
    return [line.split(None, 1)[1] for line in INSTRUCTIONS if line.split(None, 1)[0] == kind]


def test_installs_with_the_makefile_constraints():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "pip install --quiet -c constraints.txt" in makefile
    installs = [run for run in instructions("RUN") if "pip install" in run]
    assert installs and all("-c constraints.txt" in run for run in installs)
    assert any(copy.split()[:-1] == ["pyproject.toml", "constraints.txt"] for copy in instructions("COPY"))


def test_runs_as_a_non_root_user():
    users = instructions("USER")
    assert users, "the image must switch to a non-root user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert re.search(rf"useradd .*--uid {user}\b", DOCKERFILE)


def test_no_secret_is_baked_in():
    for line in instructions("ENV") + instructions("ARG"):
        assert not re.search(r"PASSWORD|SECRET|TOKEN|HMAC|_KEY\b", line), line
    ignored = (PROJECT_ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    assert {".fe_platform", ".venv", ".git", "**/*.env"} <= set(ignored)


def test_commands_are_the_ones_the_task_definitions_run():
    template = load_template()
    commands = {container["Name"]: container["Command"]
                for resource in template["Resources"].values()
                if isinstance(resource, dict) and resource.get("Type") == "AWS::ECS::TaskDefinition"
                for container in resource["Properties"]["ContainerDefinitions"]}
    assert set(commands) == {"webserver", "daemon", "run"}
    assert commands["run"] == ["dagster", "api", "execute_run"]
    # No ENTRYPOINT: ECS's command (and the run launcher's override) is the whole command line.
    assert instructions("ENTRYPOINT") == []
    (cmd,) = instructions("CMD")
    assert [part.strip(' "') for part in cmd.strip("[]").split(",")] == commands["webserver"]
    bin_dir = PROJECT_ROOT / ".venv" / "bin"
    for name, command in commands.items():
        assert (bin_dir / command[0]).exists(), f"{name}: {command[0]} is not installed by the pinned packages"
        if "-w" in command:
            workspace = command[command.index("-w") + 1]
            assert any(copy.split()[0] == workspace for copy in instructions("COPY")), workspace
    # the production instance file is the image's Dagster instance
    assert "dagster.aws.yaml /opt/dagster/dagster_home/dagster.yaml" in instructions("COPY")
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in " ".join(instructions("ENV"))
