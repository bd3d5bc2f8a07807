# Least privilege: the function reads and deletes job messages, sends to the job queue (its
# own fan-out) and the results queue, writes its log group, reads the named secrets, and uses
# the key for those; the scheduler may only send to the job queue.

data "aws_iam_policy_document" "function_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${var.name}-function"
  assume_role_policy = data.aws_iam_policy_document.function_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "ReadJobs"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.jobs.arn]
  }
  statement {
    sid       = "SendJobsResultsAndDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.jobs.arn, aws_sqs_queue.results.arn, aws_sqs_queue.dead_letters.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray has no resource-level permissions
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.secret_key_arns
  }
  dynamic "statement" {
    for_each = length(local.storage_secret_arns) > 0 ? [1] : []
    content {
      sid       = "StorageSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.storage_secret_arns
    }
  }
  dynamic "statement" {
    for_each = var.vpc == null ? [] : [1]
    content {
      sid       = "VpcNetworkInterfaces"
      actions   = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
      resources = ["*"] # Lambda's VPC access cannot be scoped further
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "worker"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

data "aws_iam_policy_document" "scheduler_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "SendJobs"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.jobs.arn]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "send-jobs"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
