# The smallest deployment on Azure: the worker, its queues, its identity allowed into one
# container, and a nightly backup of an SFTP server into it. The SFTP password goes into the
# vault afterwards:
#   az keyvault secret set --vault-name backup-worker-kv --name office-nas-password --value '...'

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

variable "backup_storage_account_id" {
  type        = string
  description = "Resource id of the storage account holding the `backups` container."
}

resource "azurerm_resource_group" "this" {
  name     = "backup-worker"
  location = var.location
}

# The app's network: outbound through one subnet, its storage and vault on private endpoints in
# the other (the module keeps their public access off).
resource "azurerm_virtual_network" "this" {
  name                = "backup-worker"
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
  address_space       = ["10.20.0.0/24"]
}

resource "azurerm_subnet" "app" {
  name                 = "app"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = ["10.20.0.0/26"]
  delegation {
    name = "flex"
    service_delegation {
      name    = "Microsoft.App/environments"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_subnet" "endpoints" {
  name                 = "endpoints"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = ["10.20.0.64/26"]
}

# Azure's default rules: traffic within the network, and out to the internet (SFTP, Azure).
resource "azurerm_network_security_group" "this" {
  name                = "backup-worker"
  resource_group_name = azurerm_resource_group.this.name
  location            = var.location
}

resource "azurerm_subnet_network_security_group_association" "this" {
  for_each                  = { app = azurerm_subnet.app.id, endpoints = azurerm_subnet.endpoints.id }
  subnet_id                 = each.value
  network_security_group_id = azurerm_network_security_group.this.id
}

resource "azurerm_private_dns_zone" "this" {
  for_each            = { blob = "privatelink.blob.core.windows.net", queue = "privatelink.queue.core.windows.net", vault = "privatelink.vaultcore.azure.net" }
  name                = each.value
  resource_group_name = azurerm_resource_group.this.name
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  for_each              = azurerm_private_dns_zone.this
  name                  = each.key
  resource_group_name   = azurerm_resource_group.this.name
  private_dns_zone_name = each.value.name
  virtual_network_id    = azurerm_virtual_network.this.id
}

module "backup_worker" {
  source                       = "../../azure"
  resource_group_name          = azurerm_resource_group.this.name
  location                     = var.location
  runtime_storage_account_name = "backupworkerruntime"
  network = {
    app_subnet_id              = azurerm_subnet.app.id
    private_endpoint_subnet_id = azurerm_subnet.endpoints.id
    private_dns_zone_ids       = { for k, z in azurerm_private_dns_zone.this : k => z.id }
  }

  storages = {
    office_nas = {
      type    = "sftp"
      options = { SSH_HOST = "nas.example.com", SSH_USERNAME = "backup" }
    }
    archive = {
      type    = "azureblob"
      options = { ACCOUNT_NAME = "officebackups", CONTAINER = "backups" }
    }
  }
  secret_settings = {
    BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD = "office-nas-password"
  }
  blob_destinations = [{ storage_account_id = var.backup_storage_account_id, container_name = "backups" }]

  backup_plan = [jsonencode({
    kind        = "backup"
    job_id      = "office-nas-nightly"
    source      = { storage = "office_nas", path = "/srv/share" }
    destination = { storage = "archive", prefix = "office-nas" }
  })]
}

output "job_queue_url" {
  description = "Put job messages here (base64)."
  value       = module.backup_worker.job_queue_url
}
