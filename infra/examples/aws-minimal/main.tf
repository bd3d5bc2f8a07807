# The smallest deployment on AWS: the worker, its queues and one nightly backup of an SFTP
# server into a Blob container. Secrets are in a Secrets Manager secret made beforehand:
#   aws secretsmanager create-secret --name backup-worker/storages --secret-string \
#     '{"BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD": "...", "BACKUP_STORAGE_ARCHIVE_CONNECTION_STRING": "..."}'

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

variable "storage_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret holding the storages' secrets."
}

module "backup_worker" {
  source              = "../../aws"
  bootstrap_zip       = "${path.root}/../../../dist/aws-x86_64/bootstrap.zip"
  storage_secret_arns = [var.storage_secret_arn]

  storages = {
    office_nas = {
      type    = "sftp"
      options = { SSH_HOST = "nas.example.com", SSH_USERNAME = "backup" }
    }
    archive = {
      type    = "azureblob"
      options = { CONTAINER = "backups" }
    }
  }

  backup_plans = {
    office-nas-nightly = {
      schedule = "cron(0 2 * * ? *)"
      message = jsonencode({
        kind        = "backup"
        job_id      = "office-nas-nightly"
        source      = { storage = "office_nas", path = "/srv/share" }
        destination = { storage = "archive", prefix = "office-nas" }
      })
    }
  }
}

output "job_queue_url" {
  description = "Send job messages here."
  value       = module.backup_worker.job_queue_url
}
