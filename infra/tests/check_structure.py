#!/usr/bin/env python3
"""Structural checks of infra/ over the parsed HCL (python-hcl2), for what `terraform validate`
would catch if providers could be downloaded here, and for the properties the deployment
promises. Run by `./dev test` (see infra/tests/run). Exit 1 with one line per failure."""

import os
import pathlib
import re
import sys

import hcl2

INFRA = pathlib.Path(os.environ.get("INFRA_DIR") or pathlib.Path(__file__).resolve().parents[1])
MODULES = ["aws", "azure"]
EXAMPLES = sorted(p.name for p in (INFRA / "examples").iterdir() if p.is_dir())
failures = []


def fail(where, why):
    failures.append(f"{where}: {why}")


def unquote(value):
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse(directory):
    """Every .tf in `directory`: (parsed blocks by kind, raw text)."""
    parsed, text = {}, ""
    for path in sorted(directory.glob("*.tf")):
        raw = path.read_text()
        text += raw
        try:
            with path.open() as f:
                doc = hcl2.load(f)
        except Exception as e:  # the parser's own words name the line
            fail(path.relative_to(INFRA), f"does not parse: {e}")
            continue
        for kind, blocks in doc.items():
            parsed.setdefault(kind, []).extend(blocks)
    return parsed, text


def named(blocks):
    """{name: body} of variable/output blocks."""
    out = {}
    for block in blocks:
        for name, body in block.items():
            out[unquote(name)] = body
    return out


def resources(parsed, kind):
    """[(name, body)] of one resource type."""
    found = []
    for block in parsed.get("resource", []):
        for rtype, instances in block.items():
            if unquote(rtype) == kind:
                found.extend((unquote(n), b) for n, b in instances.items())
    return found


def check_declarations(where, parsed, text):
    variables = named(parsed.get("variable", []))
    for name, body in variables.items():
        if "type" not in body:
            fail(where, f"variable {name} has no type")
        if not unquote(body.get("description", "")).strip():
            fail(where, f"variable {name} has no description")
    for name, body in named(parsed.get("output", [])).items():
        if not unquote(body.get("description", "")).strip():
            fail(where, f"output {name} has no description")
    for used in sorted(set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))):
        if used not in variables:
            fail(where, f"var.{used} is used but not declared")


def check_no_hard_coding(where, text):
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    if re.search(r"(?<![0-9])[0-9]{12}(?![0-9])", code):
        fail(where, "a 12-digit number (an AWS account id?) is hard-coded")
    if re.search(r'"(us|eu|ap|sa|ca|me|af)-[a-z]+-[0-9]"', code):
        fail(where, "an AWS region is hard-coded")
    if re.search(r'"(westeurope|northeurope|eastus2?|westus[23]?|uksouth|germanywestcentral)"', code):
        fail(where, "an Azure region is hard-coded")
    if re.search(r'(?i)(password|secret|account_key|connection_string)\s*=\s*"[^"$]', code):
        fail(where, "a secret value is written into the configuration")
    if re.search(r"/subscriptions/[0-9a-f-]{36}", code):
        fail(where, "a subscription id is hard-coded")


def attr(body, key):
    return unquote(body.get(key)) if isinstance(body, dict) else None


def check_aws(parsed):
    where = "aws"
    [(_, function)] = resources(parsed, "aws_lambda_function") or [(None, {})]
    if attr(function, "runtime") != "provided.al2023":
        fail(where, "the function does not run on provided.al2023")
    if "kms_key_arn" not in function:
        fail(where, "the function's environment is not encrypted with the module's key")
    timeout = function.get("timeout")
    if timeout != "${var.timeout_seconds}":
        fail(where, f"the function's timeout is {timeout}, not var.timeout_seconds")

    mappings = resources(parsed, "aws_lambda_event_source_mapping")
    if not mappings:
        fail(where, "no event source mapping")
    for name, body in mappings:
        if "ReportBatchItemFailures" not in str(body.get("function_response_types")):
            fail(where, f"event source mapping {name} does not report batch item failures")
        if body.get("batch_size") != "${var.batch_size}":
            fail(where, f"event source mapping {name} ignores var.batch_size")

    queues = dict(resources(parsed, "aws_sqs_queue"))
    jobs = queues.get("jobs", {})
    visibility = str(jobs.get("visibility_timeout_seconds"))
    factor = re.fullmatch(r"\$\{var\.timeout_seconds \* ([0-9]+)\}", visibility)
    if not factor or int(factor.group(1)) < 2:
        fail(where, f"the job queue's visibility timeout ({visibility}) is not a multiple > 1 of the function timeout")
    if "deadLetterTargetArn" not in str(jobs.get("redrive_policy")):
        fail(where, "the job queue has no redrive policy to the dead-letter queue")
    for name, body in queues.items():
        if "kms_master_key_id" not in body:
            fail(where, f"queue {name} is not encrypted with the module's key")
    for name, body in resources(parsed, "aws_cloudwatch_log_group"):
        if "kms_key_id" not in body or "retention_in_days" not in body:
            fail(where, f"log group {name} lacks encryption or retention")

    # Least privilege: no wildcard actions, and resources are named unless the service has none.
    for block in parsed.get("data", []):
        for dtype, instances in block.items():
            if unquote(dtype) != "aws_iam_policy_document":
                continue
            for name, body in instances.items():
                if unquote(name) == "key":
                    continue  # the key policy: the account administers its own key
                for statement in body.get("statement", []):
                    actions = str(statement.get("actions"))
                    if re.search(r"['\"]\*['\"]|:\*['\"]", actions):
                        fail(where, f"policy {unquote(name)} grants wildcard actions {actions}")
                    if str(statement.get("resources")) in ("['*']", '["*"]') and not re.search(
                        r"xray:|ec2:", actions
                    ):
                        fail(where, f"policy {unquote(name)} grants {actions} on every resource")


def check_azure(parsed):
    where = "azure"
    [(_, app)] = resources(parsed, "azurerm_function_app_flex_consumption") or [(None, {})]
    if app.get("https_only") is not True:
        fail(where, "the function app is not HTTPS only")
    if app.get("public_network_access_enabled") != "${var.public_network_access}":
        fail(where, "the function app's public network access is not var.public_network_access")
    site = (app.get("site_config") or [{}])[0]
    if attr(site, "minimum_tls_version") != "1.2":
        fail(where, "the function app allows TLS below 1.2")
    if attr(app, "runtime_name") != "custom":
        fail(where, "the function app is not a custom handler")
    for name, body in resources(parsed, "azurerm_storage_account"):
        if attr(body, "min_tls_version") != "TLS1_2" or body.get("shared_access_key_enabled") is not False:
            fail(where, f"storage account {name} allows TLS below 1.2 or shared keys")
    assignments = resources(parsed, "azurerm_role_assignment")
    if not assignments:
        fail(where, "no role assignments")
    for name, body in assignments:
        scope = str(body.get("scope"))
        wide = re.search(r"subscription|resource_group|resourceGroups", scope)
        to_resource = re.search(
            r"(blobServices/default/containers/|fileServices/default/fileshares/|queueServices/default/queues/"
            r"|azurerm_storage_account\.[a-z_]+\.id|azurerm_key_vault\.[a-z_]+\.id|local\.runtime_id)",
            scope,
        )
        if wide or not to_resource:
            fail(where, f"role assignment {name} is scoped to {scope}, not to one resource")
    roles = {attr(body, "role_definition_name") for _, body in assignments}
    for role in [
        "Storage Blob Data Contributor",
        "Storage File Data Privileged Contributor",
        "Storage Queue Data Message Processor",
        "Storage Queue Data Message Sender",
        "Key Vault Secrets User",
    ]:
        if role not in roles:
            fail(where, f"no {role} role assignment")


def check_validations(where, parsed, required):
    variables = named(parsed.get("variable", []))
    for name in required:
        if not variables.get(name, {}).get("validation"):
            fail(where, f"variable {name} has no validation")


def main():
    parsed = {}
    for module in MODULES:
        p, text = parse(INFRA / module)
        parsed[module] = p
        check_declarations(module, p, text)
        check_no_hard_coding(module, text)
    check_aws(parsed["aws"])
    check_azure(parsed["azure"])
    check_validations("aws", parsed["aws"], ["name", "storages", "backup_plans", "memory_mb", "timeout_seconds", "batch_size"])
    check_validations("azure", parsed["azure"], ["name", "storages", "backup_plan", "blob_destinations", "file_share_destinations", "schedule"])
    for example in EXAMPLES:
        p, text = parse(INFRA / "examples" / example)
        check_declarations(f"examples/{example}", p, text)
        modules = [unquote(b.get("source")) for block in p.get("module", []) for b in block.values()]
        if not modules or not all(m in ("../../aws", "../../azure") for m in modules):
            fail(f"examples/{example}", f"does not call a module of this repository ({modules})")
    if not EXAMPLES or {"aws-minimal", "aws-full", "azure-minimal", "azure-full"} - set(EXAMPLES):
        fail("examples", f"expected aws-minimal, aws-full, azure-minimal, azure-full; found {EXAMPLES}")
    for line in failures:
        print(line)
    print(f"infra structure: {len(failures)} problem(s) in {len(MODULES)} modules and {len(EXAMPLES)} examples")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
