# The smallest deployment on AWS: the worker, its queues and one nightly backup of an SFTP
# server into a Blob container. After `terraform apply`, put the secrets in the secret it made:
#   aws secretsmanager put-secret-value --secret-id "$(terraform output -raw storage_secret_arn)" \
#     --secret-string '{"BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD": "...", "BACKUP_STORAGE_ARCHIVE_CONNECTION_STRING": "..."}'

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

module "backup_worker" {
  source        = "../../aws"
  bootstrap_zip = "${path.root}/../../../dist/aws-x86_64/bootstrap.zip"

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

output "storage_secret_arn" {
  description = "Put the storages' secret options here."
  value       = module.backup_worker.storage_secret_arn
}
