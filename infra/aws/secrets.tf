# The storages' secrets: a Secrets Manager secret this module creates empty and encrypts with
# its key; you put its value (a JSON object of BACKUP_STORAGE_..._PASSWORD-style variables) with
# `aws secretsmanager put-secret-value`, so no value is ever in Terraform's state. Secrets you
# already have can be added by ARN (storage_secret_arns).

resource "aws_secretsmanager_secret" "storages" {
  # checkov:skip=CKV2_AWS_57: the values are the storages' own credentials (SSH keys, account keys, repository passwords), rotated where they are issued; the worker reads the current value at each cold start
  count                   = var.create_storage_secret ? 1 : 0
  name                    = "${var.name}/storages"
  description             = "Secret options of the backup worker's storage profiles, as a JSON object of BACKUP_STORAGE_* variables"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

locals {
  storage_secret_arns = concat(aws_secretsmanager_secret.storages[*].arn, var.storage_secret_arns)
}
