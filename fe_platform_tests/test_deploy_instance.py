"""The production Dagster instance (dagster.aws.yaml) with its storage on a throwaway PostgreSQL cluster and
AWS on the moto server: a launched run becomes an ECS task of the stack's run task definition; an ingestion
run executes against that instance and its run, events and asset checks are read back from PostgreSQL."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.remote_origin import RemoteJobOrigin  # noqa: F401  (imported for its serdes registration)
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._serdes import deserialize_value

from fe_platform.definitions import build_definitions
from fe_platform.defs.resources import lake_from_settings
from fe_platform.settings import PROJECT_ROOT, load_settings
from fe_platform_tests import postgres_cluster
from fe_platform_tests.deploy_stack import REGION, create_stack
from fe_platform_tests.test_ingestion import delimited, iqvia_rows, land

pytestmark = [
    pytest.mark.postgres,
    # Dagster's own schedule snapshot reads this deprecated property when a workspace loads in-process.
    pytest.mark.filterwarnings("ignore:Property `ScheduleDefinition.environment_vars` is deprecated"),
]
PRODUCTION_INSTANCE = PROJECT_ROOT / "dagster.aws.yaml"
IMAGE = "registry.example/fe-platform:test"


def test_production_run_queue_is_the_local_one():
    local = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    production = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    assert production["run_coordinator"] == local["run_coordinator"]
    assert production["auto_materialize"] == local["auto_materialize"]


def test_production_instance_file_holds_no_secret_and_reads_environment_only():
    text = PRODUCTION_INSTANCE.read_text()
    config = yaml.safe_load(text)
    db = config["storage"]["postgres"]["postgres_db"]
    assert all(set(value) == {"env"} for name, value in db.items() if name != "scheme"), db
    assert config["run_launcher"]["config"]["task_definition"] == {"env": "DAGSTER_RUN_TASK_DEFINITION"}
    assert config["compute_logs"]["config"]["bucket"] == {"env": "FE_S3_BUCKET"}


@pytest.fixture(scope="module")
def pg():
    assert postgres_cluster.available(), "PostgreSQL 15 is required: .ci/run installs postgresql-15"
    with postgres_cluster.PostgresCluster(database="dagster") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def stack(moto_endpoint):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.43.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"))]
        created = create_stack(moto_endpoint, "fe-platform-inst", {
            "EnvironmentName": "inst", "VpcId": vpc, "PrivateSubnetIds": ",".join(subnets), "ImageUri": IMAGE})
        created.parameters["subnets"] = subnets
        return created


@pytest.fixture
def production_instance(pg, stack, moto_endpoint, monkeypatch, tmp_path):
    """dagster.aws.yaml as the instance, with the environment the stack gives the ECS tasks."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto_endpoint,
        "DAGSTER_PG_HOST": pg.host, "DAGSTER_PG_PORT": str(pg.port), "DAGSTER_PG_DB": pg.database,
        "DAGSTER_PG_USER": pg.user, "DAGSTER_PG_PASSWORD": pg.password,
        "FE_S3_BUCKET": stack.outputs["LakeBucketName"], "DAGSTER_COMPUTE_LOGS_PREFIX": "dagster/compute-logs",
        "DAGSTER_RUN_TASK_DEFINITION": stack.outputs["RunTaskDefinitionFamily"],
        "FE_INGESTION_TASK_ROLE_ARN": stack.outputs["IngestionRoleArn"],
        "FE_DASHBOARD_TASK_ROLE_ARN": stack.outputs["DashboardPublishingRoleArn"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_INSTANCE, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


class _TaskMetadata(BaseHTTPRequestHandler):
    """ECS's task metadata endpoint (v4), as the daemon's task sees it."""

    task: dict = {}

    def do_GET(self):  # noqa: N802 (the http.server API)
        body = {"Cluster": self.task["clusterArn"], "TaskARN": self.task["taskArn"]} if self.path == "/task" else {
            "Name": "daemon"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def daemon_task(stack, production_instance, monkeypatch):
    """The daemon's own ECS task on moto, and its metadata endpoint on 127.0.0.1."""
    # moto 5.2.5's RunTask of an awsvpc task reads a private_dns_name its network interfaces lack (a moto bug;
    # the server runs in this process, so the missing attribute is given here).
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    if not hasattr(NetworkInterface, "private_dns_name"):
        monkeypatch.setattr(NetworkInterface, "private_dns_name", property(
            lambda eni: "ip-" + eni.private_ip_address.replace(".", "-") + ".ec2.internal"), raising=False)
    ecs = stack.client("ecs")
    task = ecs.run_task(cluster=stack.outputs["ClusterName"], taskDefinition="fe-platform-inst-daemon",
                        launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {
                            "subnets": [stack.parameters["subnets"][0]], "assignPublicIp": "DISABLED",
                            "securityGroups": [stack.physical["TasksSecurityGroup"]]}})["tasks"][0]
    handler = type("Metadata", (_TaskMetadata,), {"task": task})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", f"http://127.0.0.1:{server.server_port}")
    yield task
    server.shutdown()


def launch(instance, job_name: str, tags: dict[str, str]):
    from fe_platform.definitions import defs

    origin = LoadableTargetOrigin(module_name="fe_platform.definitions", working_directory=str(PROJECT_ROOT))
    with in_process_test_workspace(instance, origin, container_image=IMAGE) as workspace:
        location = workspace.get_code_location(workspace.code_location_names[0])
        remote_job = location.get_repository("__repository__").get_full_job(job_name)
        run = instance.create_run_for_job(
            job_def=defs.resolve_job_def(job_name), remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(), tags=tags)
        instance.launch_run(run.run_id, workspace)
    return instance.get_run_by_id(run.run_id)


def test_a_launched_ingestion_run_is_an_ecs_task_of_the_run_definition(stack, production_instance, daemon_task):
    ecs = stack.client("ecs")
    run = launch(production_instance, "ingest_iqvia_rx_job",
                 {"fe_platform/feed": "iqvia_rx", "dagster/partition": "2026-11-20"})
    assert run.tags["ecs/task_arn"] != daemon_task["taskArn"]
    (task,) = ecs.describe_tasks(cluster=stack.outputs["ClusterName"], tasks=[run.tags["ecs/task_arn"]],
                                 include=["TAGS"])["tasks"]
    run_definition = ecs.describe_task_definition(taskDefinition="fe-platform-inst-run")["taskDefinition"]
    assert task["taskDefinitionArn"] == run_definition["taskDefinitionArn"]
    assert task["launchType"] == "FARGATE"
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "run"
    assert override["command"][:3] == run_definition["containerDefinitions"][0]["command"] == [
        "dagster", "api", "execute_run"]
    args = deserialize_value(override["command"][3])
    assert args.run_id == run.run_id and args.job_origin.job_name == "ingest_iqvia_rx_job"
    assert args.instance_ref.run_storage_data.class_name == "DagsterPostgresStorage" or \
        "postgres" in args.instance_ref.run_storage_data.module_name
    # an ingestion run runs as the ingestion role, not the run task definition's own
    assert task["overrides"]["taskRoleArn"] == stack.outputs["IngestionRoleArn"]
    assert run_definition["taskRoleArn"] != stack.outputs["IngestionRoleArn"]
    # the daemon's network: its subnet and security group
    details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
    assert details["subnetId"] == stack.parameters["subnets"][0]
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["dagster/run_id"] == run.run_id and tags["fe_platform/feed"] == "iqvia_rx"
    assert tags["dagster/job_name"] == "ingest_iqvia_rx_job"


def test_a_run_of_other_assets_keeps_the_run_task_role(stack, production_instance, daemon_task):
    from fe_platform.definitions import defs

    job = next(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith(("ingest_", "__")))
    run = launch(production_instance, job, {})
    (task,) = stack.client("ecs").describe_tasks(cluster=stack.outputs["ClusterName"],
                                                 tasks=[run.tags["ecs/task_arn"]])["tasks"]
    assert "taskRoleArn" not in task["overrides"]


def test_an_ingestion_run_on_the_production_instance_is_recorded_in_postgres(
        pg, production_instance, aws_env, moto_endpoint):
    """The run executes in-process (ECS cannot run a container here), through the production instance file:
    storage in PostgreSQL, compute logs configured for S3, the PII key from Secrets Manager."""
    secret = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name=REGION).create_secret(
        Name=f"fe-platform/run-test/pii-{pg.port}", SecretString="a-pii-key-from-secrets-manager-123")["ARN"]
    env = {**aws_env, "FE_PII_HMAC_KEY_SECRET_ID": secret, "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint}
    del env["FE_PII_HMAC_KEY"]
    settings = load_settings(env)
    lake = lake_from_settings(settings)
    key = land(lake, "iqvia_rx", "RXDYN_WEEKLY_20261120.txt", delimited("iqvia_rx", iqvia_rows(5)))
    result = build_definitions(settings).resolve_job_def("ingest_iqvia_rx_job").execute_in_process(
        instance=production_instance, partition_key="2026-11-20",
        run_config={"ops": {"ingest_iqvia_rx": {"config": {"landing_keys": [key]}}}})
    assert result.success

    with psycopg.connect(**pg.conninfo()) as con:
        status = con.execute("select status from runs where run_id = %s", (result.run_id,)).fetchone()
        materialized = {row[0] for row in con.execute(
            "select asset_key from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,))}
        events = con.execute("select count(*) from event_logs where run_id = %s", (result.run_id,)).fetchone()[0]
        checks = con.execute(
            "select check_name, execution_status from asset_check_executions where run_id = %s "
            "and asset_key = %s", (result.run_id, '["validated_iqvia_rx"]')).fetchall()
    assert status == ("SUCCESS",)
    assert materialized == {'["raw_iqvia_rx"]', '["validated_iqvia_rx"]', '["delivery_log"]'}
    assert events > 10
    assert checks and {s for _, s in checks} <= {"SUCCEEDED", "FAILED"}
    assert len(checks) == len({name for name, _ in checks})
    assert Path(PRODUCTION_INSTANCE).exists()
