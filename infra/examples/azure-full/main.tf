# Every knob on Azure: bigger instances, more of them, Blob and Azure Files destinations over
# OAuth, mirror and snapshot backups each night, retention in the same plan, a longer timeout.

terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.25, < 5.0"
    }
  }
}

provider "azurerm" {
  features {}
}

variable "location" {
  type        = string
  description = "Azure region, e.g. westeurope."
}

variable "resource_group_name" {
  type        = string
  description = "An existing resource group for the worker."
}

variable "backup_storage_account_id" {
  type        = string
  description = "Resource id of the account with the `backups` and `snapshots` containers and the `archive` share."
}

variable "app_subnet_id" {
  type        = string
  description = "Subnet delegated to Microsoft.App/environments, with outbound access to the SFTP server and Azure."
}

variable "private_endpoint_subnet_id" {
  type        = string
  description = "Subnet for the private endpoints of the app's storage account and vault."
}

variable "private_dns_zone_ids" {
  type        = map(string)
  description = "The hub's private DNS zones by endpoint: blob, queue, vault."
}

locals {
  source     = { storage = "office_nas", path = "/srv/share" }
  repository = { storage = "archive", container = "snapshots", prefix = "office-nas-restic" }
}

module "backup_worker" {
  source                       = "../../azure"
  name                         = "office-backups"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  runtime_storage_account_name = "officebackupsruntime"
  instance_memory_mb           = 4096
  maximum_instance_count       = 40
  function_timeout_seconds     = 1800
  log_retention_days           = 365
  network = {
    app_subnet_id              = var.app_subnet_id
    private_endpoint_subnet_id = var.private_endpoint_subnet_id
    private_dns_zone_ids       = var.private_dns_zone_ids
  }

  storages = {
    office_nas = {
      type = "sftp"
      options = {
        SSH_HOST                 = "nas.internal.example.com"
        SSH_USERNAME             = "backup"
        SSH_HOST_KEY_FINGERPRINT = "SHA256:REPLACE_WITH_THE_SERVERS_FINGERPRINT"
      }
    }
    archive = {
      type    = "azureblob"
      options = { ACCOUNT_NAME = "officebackups", MAX_CONNECTIONS = "8" }
    }
    share = {
      type    = "azurefiles"
      options = { ACCOUNT_NAME = "officebackups", SHARE_NAME = "archive" }
    }
  }
  secret_settings = {
    BACKUP_STORAGE_OFFICE_NAS_SSH_PRIVATE_KEY = "office-nas-key"
    BACKUP_STORAGE_ARCHIVE_RESTIC_PASSWORD    = "archive-restic-password"
  }
  blob_destinations = [
    { storage_account_id = var.backup_storage_account_id, container_name = "backups" },
    { storage_account_id = var.backup_storage_account_id, container_name = "snapshots" },
  ]
  file_share_destinations = [{ storage_account_id = var.backup_storage_account_id, share_name = "archive" }]

  schedule = "0 30 1 * * *"
  backup_plan = [
    jsonencode({ kind = "backup", job_id = "nas-to-blob", source = local.source,
    destination = { storage = "archive", container = "backups", prefix = "office-nas" } }),
    jsonencode({ kind = "backup", job_id = "nas-to-share", source = local.source,
    destination = { storage = "share", prefix = "office-nas" }, options = { chunk_size = "4MiB" } }),
    jsonencode({ kind = "backup", job_id = "nas-snapshot", mode = "snapshot", init = true,
    tags = ["nightly"], source = local.source, destination = local.repository }),
    jsonencode({ kind = "forget", job_id = "nas-retention", destination = local.repository,
    keep_daily = 7, keep_weekly = 5, keep_monthly = 12, prune = true }),
  ]

  tags = { service = "backups", owner = "platform" }
}

output "job_queue_url" {
  description = "Put job messages here (base64)."
  value       = module.backup_worker.job_queue_url
}

output "key_vault_name" {
  description = "Set office-nas-key and archive-restic-password in this vault."
  value       = module.backup_worker.key_vault_name
}
