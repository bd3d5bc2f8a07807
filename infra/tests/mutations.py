#!/usr/bin/env python3
"""The structural checks can fail: each mutation below breaks a promise of infra/ in a copy,
and check_structure.py must name it. Run by infra/tests/run."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
INFRA = HERE.parent

# (file, text, replacement, what the check must say)
MUTATIONS = [
    ("aws/main.tf", 'function_response_types = ["ReportBatchItemFailures"]', "function_response_types = []",
     "does not report batch item failures"),
    ("aws/queues.tf", "var.timeout_seconds * 6", "var.timeout_seconds", "visibility timeout"),
    ("aws/iam.tf", '"sqs:SendMessage"]\n    resources = [aws_sqs_queue.jobs.arn, aws_sqs_queue.results.arn',
     '"sqs:*"]\n    resources = [aws_sqs_queue.jobs.arn, aws_sqs_queue.results.arn', "wildcard actions"),
    ("azure/identity.tf", 'scope                = azurerm_key_vault.this.id',
     'scope                = "/subscriptions/${data.azurerm_client_config.current.subscription_id}"',
     "not to one resource"),
    ("aws/variables.tf", '  description = "Tags on every resource."\n', "", "variable tags has no description"),
    ("azure/main.tf", "BACKUP_MEMORY_BUDGET         = local.memory_budget",
     "BACKUP_MEMORY_BUDGET         = var.memory_budget", "var.memory_budget is used but not declared"),
    ("aws/main.tf", 'handler                        = "bootstrap"', 'handler = "bootstrap"\n  publish = "us-east-1" == ""',
     "AWS region is hard-coded"),
    ("azure/main.tf", "https_only                      = true", "https_only = false", "not HTTPS only"),
]


def main():
    failed = 0
    for path, text, replacement, expected in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            copy = pathlib.Path(tmp) / "infra"
            shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns("tests", ".terraform"))
            target = copy / path
            source = target.read_text()
            if text not in source:
                print(f"mutation of {path} no longer applies: `{text}` is not there")
                failed += 1
                continue
            target.write_text(source.replace(text, replacement, 1))
            run = subprocess.run(
                [sys.executable, str(HERE / "check_structure.py")],
                env={**os.environ, "INFRA_DIR": str(copy)},
                capture_output=True,
                text=True,
            )
            if run.returncode == 0 or expected not in run.stdout:
                print(f"mutation of {path} ({expected}) was not caught:\n{run.stdout}{run.stderr}")
                failed += 1
    print(f"infra mutations: {len(MUTATIONS) - failed} of {len(MUTATIONS)} caught")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
