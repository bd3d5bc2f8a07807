# The worker on AWS Lambda: one function (provided.al2023) fed by an SQS job queue, with its
# dead-letter queue, a results queue, EventBridge Scheduler schedules that put job messages on
# the queue, a log group, and one KMS key that encrypts the queues, the logs and the function's
# environment. The role may touch exactly these queues, this key, this log group and the
# storage secrets named by ARN.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # The worker hands work back this long before the function's deadline.
  handoff_margin_secs = max(30, floor(var.timeout_seconds / 10))
  # Half the function's memory for file data, the rest for the runtime and the repository index.
  memory_budget = "${floor(var.memory_mb / 2)}MiB"

  # BACKUP_STORAGE_<NAME>_TYPE and BACKUP_STORAGE_<NAME>_<OPTION> for every storage profile.
  storage_environment = merge([
    for name, s in var.storages : merge(
      { "BACKUP_STORAGE_${upper(name)}_TYPE" = s.type },
      { for option, value in s.options : "BACKUP_STORAGE_${upper(name)}_${option}" => value },
    )
  ]...)

  secret_key_arns = compact([aws_kms_key.this.arn, var.secrets_kms_key_arn])
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: job queues, logs and function environment"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_111: a key policy's resource is always "*", meaning this key; the account statement is AWS's default and lets IAM grant the key's use (the roles below)
  # checkov:skip=CKV_AWS_356: as above: "*" in a key policy is the key itself, not every resource
  # checkov:skip=CKV_AWS_109: as above: administering the key stays with the account's IAM administrators
  # The account administers the key; IAM policies grant its use (the roles below).
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  # CloudWatch Logs encrypts this function's log group, and nothing else, with it.
  statement {
    sid       = "Logs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}"]
    }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_117: a VPC is optional (var.vpc); the worker reaches SFTP servers and Azure over the internet, which a VPC only adds NAT cost to
  # checkov:skip=CKV_AWS_272: code signing needs a signing profile the operator owns; the package is built from this repository by infra/package.sh
  function_name                  = var.name
  description                    = "Serverless backup worker: SFTP to Azure Blob / Files backups, restores and checks"
  role                           = aws_iam_role.function.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.bootstrap_zip
  source_code_hash               = filebase64sha256(var.bootstrap_zip)
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.max_concurrency
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = merge(local.storage_environment, {
      BACKUP_QUEUE_URL           = aws_sqs_queue.jobs.url
      BACKUP_RESULTS_QUEUE_URL   = aws_sqs_queue.results.url
      BACKUP_HANDOFF_MARGIN_SECS = tostring(local.handoff_margin_secs)
      BACKUP_MEMORY_BUDGET       = local.memory_budget
      BACKUP_SECRETS_ID          = join(",", local.storage_secret_arns)
    })
  }

  logging_config {
    log_format = "Text" # the worker writes JSON lines itself
    log_group  = aws_cloudwatch_log_group.this.name
  }

  tracing_config {
    mode = "Active"
  }

  # Asynchronous invocations that fail end here too (SQS-driven ones use the queue's redrive).
  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letters.arn
  }

  dynamic "vpc_config" {
    for_each = var.vpc == null ? [] : [var.vpc]
    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy.function]
}

resource "aws_lambda_event_source_mapping" "jobs" {
  event_source_arn        = aws_sqs_queue.jobs.arn
  function_name           = aws_lambda_function.this.arn
  batch_size              = var.batch_size
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.max_concurrency
  }
}
