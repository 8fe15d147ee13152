"""deploy/cloudformation.yaml: cfn-lint, then the stack on the moto server, read back from the services.

Resource types moto cannot create, and properties its CloudFormation drops, are listed with the reason in
fe_platform_tests/deploy_stack.py: the stack is created from the template minus those resources (the
alarms are checked by cfn-lint alone; the secrets and the Glue database are made with their own APIs), and
the dropped properties are applied from the template through each service's API before they are read back.
"""

import ast
import json
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest
from cfnlint.api import ManualArgs, lint_file

from fe_platform.lib.feeds import FEEDS
from fe_platform_tests.deploy_stack import (
    NOT_CREATED_BY_CLOUDFORMATION,
    REGION,
    TEMPLATE,
    create_stack,
    load_template,
)

# cfn-lint findings allowed to stand, each with its reason. None today, informational checks included.
EXPLAINED_FINDINGS: dict[str, str] = {}


def test_cfn_lint_finds_nothing_unexplained():
    matches = lint_file(Path(TEMPLATE), config=ManualArgs(regions=[REGION], include_checks=["I"]))
    unexplained = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches
                   if m.rule.id not in EXPLAINED_FINDINGS]
    assert unexplained == []


def test_every_feed_has_alarms_routed_to_its_owner_team_and_every_team_a_topic():
    template = load_template()
    mapping = {k.replace("-", "_"): v for k, v in template["Mappings"]["FeedAlarms"].items()}
    looped = template["Resources"]["Fn::ForEach::FeedAlarms"][1]
    missing = sorted(set(FEEDS) - set(looped))
    assert missing == [], f"add these feeds to Fn::ForEach::FeedAlarms and Mappings.FeedAlarms: {missing}"
    for feed in FEEDS.values():
        assert mapping[feed.name]["Team"] == feed.owner_team, feed.name
        assert mapping[feed.name]["QuarantinePct"] == feed.quarantine_warn_pct, feed.name
    topics = {json.dumps(r["Properties"]["TopicName"]) for r in template["Resources"].values()
              if isinstance(r, dict) and r.get("Type") == "AWS::SNS::Topic"}
    for team in {f.owner_team for f in FEEDS.values()} | {"platform"}:
        assert any(f"alerts-{team}\"" in t for t in topics), team
    alarms = template["Resources"]["Fn::ForEach::FeedAlarms"][2]
    assert {a["Properties"].get("MetricName") for a in alarms.values()} >= {"rejected", "freshness_lag_hours"}
    for alarm in alarms.values():
        props = alarm["Properties"]
        metrics = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m] or [props]
        for metric in metrics:
            assert metric["Namespace"] == "FE/Platform"
            assert [d["Name"] for d in metric["Dimensions"]] == ["feed", "asset"]


@pytest.fixture(scope="module")
def stack(moto_endpoint):
    import os
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")[
        "Subnet"]["SubnetId"] for i, zone in ((1, "a"), (2, "b"))]
    return create_stack(moto_endpoint, "fe-platform-tmpl", {
        "EnvironmentName": "tmpl", "VpcId": vpc, "PrivateSubnetIds": ",".join(subnets),
        "ImageUri": "registry.example/fe-platform:test"})


def test_the_stack_lists_what_moto_could_not_create(stack):
    kinds = {r["Type"] for r in stack.template["Resources"].values() if isinstance(r, dict) and "Type" in r}
    created = {r["ResourceType"] for r in stack.client("cloudformation").describe_stack_resources(
        StackName=stack.name)["StackResources"]}
    assert kinds - created == set(NOT_CREATED_BY_CLOUDFORMATION) - {"AWS::CloudWatch::Alarm"}
    assert {"AWS::S3::Bucket", "AWS::KMS::Key", "AWS::IAM::Role", "AWS::ECS::Service", "AWS::RDS::DBInstance",
            "AWS::Redshift::Cluster", "AWS::SNS::Topic", "AWS::Logs::LogGroup"} <= created


def test_lake_bucket_is_encrypted_with_the_stack_key_versioned_and_private(stack):
    s3 = stack.client("s3")
    bucket = stack.outputs["LakeBucketName"]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == stack.outputs["LakeKeyArn"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert set(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values()) == {True}
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["raw-to-infrequent-access"]["Filter"]["Prefix"] == "lake/raw/"
    assert rules["raw-to-infrequent-access"]["Transitions"] == [{"Days": 90, "StorageClass": "STANDARD_IA"}]
    assert stack.client("kms").list_aliases(KeyId=stack.physical["LakeKey"])["Aliases"][0]["AliasName"] == \
        "alias/fe-platform-tmpl"


def role_arn(stack, logical):
    return stack.client("iam").get_role(RoleName=stack.physical[logical])["Role"]["Arn"]


def test_bucket_policy_is_tls_only_and_bronze_is_read_by_ingestion_only(stack):
    bucket = stack.outputs["LakeBucketName"]
    policy = json.loads(stack.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    tls = statements["TlsOnly"]
    assert (tls["Effect"], tls["Action"]) == ("Deny", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bronze = statements["BronzeReadableOnlyByIngestion"]
    assert bronze["Effect"] == "Deny" and "s3:GetObject" in bronze["Action"]
    assert sorted(bronze["Resource"]) == sorted(f"arn:aws:s3:::{bucket}/lake/{zone}/*"
                                                for zone in ("landing", "raw", "rejected"))
    allowed = bronze["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert sorted(allowed) == sorted([role_arn(stack, "IngestionRole"), role_arn(stack, "DagsterDaemonRole")])


def policy_document(document) -> dict:
    if isinstance(document, dict):
        return document
    text = unquote(document)
    # moto keeps some inline policies its CloudFormation made as a Python repr, not JSON
    return json.loads(text) if text.startswith('{"') else ast.literal_eval(text)


def statements_of(stack, logical) -> list[dict]:
    """Every policy statement a role holds: inline and attached managed policies."""
    iam = stack.client("iam")
    name = stack.physical[logical]
    out = []
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        out += policy_document(document)["Statement"]
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        if ":aws:policy/" in attached["PolicyArn"]:
            continue  # AWS-managed (the ECS task execution policy)
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"][
            "Document"]
        out += policy_document(document)["Statement"]
    return out


def s3_objects(stack, logical, action) -> set[str]:
    """The lake zones (or other prefixes) where the role may do `action`."""
    bucket = stack.outputs["LakeBucketName"]
    found = set()
    for statement in statements_of(stack, logical):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] == "Allow" and action in actions:
            found |= {r.removeprefix(f"arn:aws:s3:::{bucket}/").removeprefix("lake/") for r in resources
                      if r.startswith(f"arn:aws:s3:::{bucket}/")}
    return found


def actions_of(stack, logical) -> set[str]:
    out = set()
    for statement in statements_of(stack, logical):
        out |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    return out


def test_each_role_holds_only_its_work(stack):
    bronze = {"landing/*", "raw/*", "rejected/*"}
    assert bronze <= s3_objects(stack, "IngestionRole", "s3:GetObject")
    assert {"validated/*", "quarantine/*", "deliveries/*"} <= s3_objects(stack, "IngestionRole", "s3:PutObject")
    for role in ("RunTaskRole", "DashboardPublishingRole", "DagsterWebserverRole", "WarehouseLoadRole"):
        assert not bronze & s3_objects(stack, role, "s3:GetObject"), role
    assert s3_objects(stack, "WarehouseLoadRole", "s3:GetObject") == {"validated/*", "deliveries/*"}
    assert actions_of(stack, "WarehouseLoadRole") == {"s3:GetObject", "s3:ListBucket"}
    assert s3_objects(stack, "RunTaskRole", "s3:PutObject") == {"dagster/compute-logs/*"}
    assert "dashboards/*" in s3_objects(stack, "DashboardPublishingRole", "s3:PutObject")
    assert "dashboards/*" not in s3_objects(stack, "RunTaskRole", "s3:PutObject")
    assert s3_objects(stack, "DagsterWebserverRole", "s3:GetObject") == {"dagster/compute-logs/*"}
    daemon = actions_of(stack, "DagsterDaemonRole")
    assert {"ecs:RunTask", "iam:PassRole", "sns:Publish"} <= daemon
    assert "ecs:RunTask" not in actions_of(stack, "DagsterWebserverRole")
    assert "iam:PassRole" not in actions_of(stack, "IngestionRole")
    daemon_statements = {s.get("Sid"): s for s in statements_of(stack, "DagsterDaemonRole")}
    run_task = daemon_statements["RunTasksOnThePlatformCluster"]
    assert run_task["Resource"].endswith(":task-definition/fe-platform-tmpl-run:*")
    passed = daemon_statements["PassOnlyTheRunRoles"]
    assert sorted(passed["Resource"]) == sorted(role_arn(stack, r) for r in (
        "RunTaskRole", "IngestionRole", "DashboardPublishingRole", "TaskExecutionRole"))
    metrics = next(s for s in statements_of(stack, "IngestionRole") if s.get("Sid") == "PlatformMetrics")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "FE/Platform"}}


def environment(container) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["environment"]}


def test_task_definitions_name_their_secrets_and_roles(stack):
    ecs = stack.client("ecs")
    secrets = {s["Name"]: s["ARN"] for s in stack.client("secretsmanager").list_secrets()["SecretList"]}
    expected_command = {"webserver": ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"],
                        "daemon": ["dagster-daemon", "run", "-w", "workspace.yaml"],
                        "run": ["dagster", "api", "execute_run"]}
    roles = {"webserver": "DagsterWebserverRole", "daemon": "DagsterDaemonRole", "run": "RunTaskRole"}
    for name, command in expected_command.items():
        definition = ecs.describe_task_definition(taskDefinition=f"fe-platform-tmpl-{name}")["taskDefinition"]
        assert definition["networkMode"] == "awsvpc" and definition["requiresCompatibilities"] == ["FARGATE"]
        assert definition["taskRoleArn"] == role_arn(stack, roles[name])
        assert definition["executionRoleArn"] == role_arn(stack, "TaskExecutionRole")
        (container,) = definition["containerDefinitions"]
        assert container["name"] == name and container["command"] == command
        assert container["image"] == "registry.example/fe-platform:test"
        env = environment(container)
        assert env["FE_MODE"] == "aws" and env["FE_S3_BUCKET"] == stack.outputs["LakeBucketName"]
        assert env["FE_PII_HMAC_KEY_SECRET_ID"] == secrets["fe-platform/tmpl/pii-hmac-key"]
        assert env["FE_REDSHIFT_PASSWORD_SECRET_ID"] == secrets["fe-platform/tmpl/warehouse-admin"] + "#password"
        assert env["DAGSTER_RUN_TASK_DEFINITION"] == "fe-platform-tmpl-run"
        assert env["FE_GLUE_DATABASE"] == "fe_platform_tmpl"
        # no secret value in the task definition: passwords and keys are named, never given
        assert not [k for k in env if k.endswith(("_PASSWORD", "_KEY", "_TOKEN_SECRET"))], env
        assert container["secrets"] == [{"name": "DAGSTER_PG_PASSWORD",
                                         "valueFrom": secrets["fe-platform/tmpl/dagster-db"] + ":password::"}]
        logs = container["logConfiguration"]["options"]
        assert logs["awslogs-group"] == "/fe-platform/tmpl/" + {"run": "runs"}.get(name, name)
    services = ecs.describe_services(cluster="fe-platform-tmpl", services=["webserver", "daemon"])["services"]
    assert sorted((s["serviceName"], s["desiredCount"]) for s in services) == [("daemon", 1), ("webserver", 1)]


def test_topics_log_groups_and_stores_exist(stack):
    topics = {t["TopicArn"].rsplit(":", 1)[1] for t in stack.client("sns").list_topics()["Topics"]}
    assert {f"fe-platform-tmpl-alerts-{t}" for t in {f.owner_team for f in FEEDS.values()} | {"platform"}} <= topics
    groups = {g["logGroupName"]: g for g in stack.client("logs").describe_log_groups(
        logGroupNamePrefix="/fe-platform/tmpl/")["logGroups"]}
    assert sorted(groups) == ["/fe-platform/tmpl/daemon", "/fe-platform/tmpl/runs", "/fe-platform/tmpl/webserver"]
    assert {g["retentionInDays"] for g in groups.values()} == {90}
    db = stack.client("rds").describe_db_instances(DBInstanceIdentifier="fe-platform-tmpl-dagster")["DBInstances"][0]
    assert (db["Engine"], db["StorageEncrypted"], db["PubliclyAccessible"]) == ("postgres", True, False)
    assert db["MultiAZ"]
    warehouse = stack.redshift_cluster("Warehouse")
    assert warehouse["Encrypted"] and not warehouse["PubliclyAccessible"]
    assert stack.resolve(stack.template["Resources"]["Warehouse"]["Properties"]["IamRoles"]) == [
        role_arn(stack, "WarehouseLoadRole")]  # (moto keeps no IAM roles on a cluster: see deploy_stack.py)
    assert stack.client("glue").get_database(Name="fe_platform_tmpl")["Database"]["LocationUri"].endswith(
        "/lake/validated/")
