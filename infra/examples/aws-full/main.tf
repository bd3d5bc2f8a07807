# Every knob on AWS: arm64, more memory and instances, a VPC, mirror and snapshot backups,
# weekly verify and check, monthly retention, results kept 14 days, logs a year.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

variable "storage_secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets with the storages' secrets (SSH keys, Azure credentials, RESTIC_PASSWORD)."
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "The customer-managed key those secrets are encrypted with."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets with a NAT route to the SFTP servers and to Azure."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups allowing outbound SSH (22) and HTTPS (443)."
}

locals {
  source      = { storage = "office_nas", path = "/srv/share" }
  mirror      = { storage = "archive", container = "backups", prefix = "office-nas" }
  repository  = { storage = "archive", container = "snapshots", prefix = "office-nas-restic" }
  on_the_hour = "Europe/Berlin"
}

module "backup_worker" {
  source              = "../../aws"
  name                = "office-backups"
  bootstrap_zip       = "${path.root}/../../../dist/aws-arm64/bootstrap.zip"
  architecture        = "arm64"
  memory_mb           = 2048
  timeout_seconds     = 900
  batch_size          = 2
  max_concurrency     = 20
  max_receive_count   = 3
  log_retention_days  = 365
  storage_secret_arns = var.storage_secret_arns
  secrets_kms_key_arn = var.secrets_kms_key_arn
  vpc = {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  storages = {
    office_nas = {
      type = "sftp"
      options = {
        SSH_HOST                 = "nas.internal.example.com"
        SSH_PORT                 = "2222"
        SSH_USERNAME             = "backup"
        SSH_HOST_KEY_FINGERPRINT = "SHA256:REPLACE_WITH_THE_SERVERS_FINGERPRINT"
      }
    }
    archive = {
      type    = "azureblob"
      options = { ACCOUNT_NAME = "officebackups", MAX_CONNECTIONS = "8" }
    }
  }

  backup_plans = {
    mirror-nightly = {
      schedule = "cron(0 2 * * ? *)"
      timezone = local.on_the_hour
      message = jsonencode({
        kind    = "backup", job_id = "office-nas-mirror", source = local.source, destination = local.mirror,
        exclude = ["*.tmp"], options = { chunk_size = "8MiB", upload_concurrency = 16 }
      })
    }
    snapshot-nightly = {
      schedule = "cron(30 2 * * ? *)"
      timezone = local.on_the_hour
      message = jsonencode({
        kind = "backup", job_id = "office-nas-snapshot", mode = "snapshot", init = true,
        tags = ["nightly"], source = local.source, destination = local.repository
      })
    }
    verify-weekly = {
      schedule = "cron(0 6 ? * SUN *)"
      timezone = local.on_the_hour
      message  = jsonencode({ kind = "verify", job_id = "office-nas-verify", destination = local.mirror })
    }
    check-weekly = {
      schedule = "cron(0 7 ? * SUN *)"
      timezone = local.on_the_hour
      message  = jsonencode({ kind = "check", job_id = "office-nas-check", destination = local.repository, read_data = true })
    }
    retention-monthly = {
      schedule = "cron(0 8 1 * ? *)"
      timezone = local.on_the_hour
      message = jsonencode({
        kind       = "forget", job_id = "office-nas-retention", destination = local.repository,
        keep_daily = 7, keep_weekly = 5, keep_monthly = 12, keep_yearly = 3, prune = true
      })
    }
  }

  tags = { service = "backups", owner = "platform" }
}

output "job_queue_url" {
  description = "Send job messages here (a Test Connection too)."
  value       = module.backup_worker.job_queue_url
}

output "results_queue_url" {
  description = "Read every job's result here."
  value       = module.backup_worker.results_queue_url
}
