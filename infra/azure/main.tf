# The worker on Azure Functions (Linux, Flex Consumption, custom handler): a storage account for
# the app's runtime, package and job queues, the job queue and its poison queue, a results
# queue, a user-assigned identity that is everything the app is allowed to be, Key Vault for
# the storages' secrets, and Application Insights. HTTPS only, TLS 1.2 at least, shared keys
# off (identity everywhere), public network access off unless asked for.

locals {
  handoff_margin_secs = max(30, floor(var.function_timeout_seconds / 10))
  memory_budget       = "${floor(var.instance_memory_mb / 2)}MiB"
  queues              = ["backup-jobs", "backup-jobs-poison", "backup-results"]

  # BACKUP_STORAGE_<NAME>_... for every profile; Azure storages sign in as the app's identity.
  storage_settings = merge([
    for name, s in var.storages : merge(
      { "BACKUP_STORAGE_${upper(name)}_TYPE" = s.type },
      s.type == "sftp" ? {} : {
        "BACKUP_STORAGE_${upper(name)}_USE_MSI"       = "true"
        "BACKUP_STORAGE_${upper(name)}_MSI_CLIENT_ID" = azurerm_user_assigned_identity.this.client_id
      },
      { for option, value in s.options : "BACKUP_STORAGE_${upper(name)}_${option}" => value },
    )
  ]...)

  secret_references = {
    for setting, secret in var.secret_settings :
    setting => "@Microsoft.KeyVault(SecretUri=${azurerm_key_vault.this.vault_uri}secrets/${secret})"
  }
}

resource "azurerm_user_assigned_identity" "this" {
  name                = "${var.name}-identity"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_storage_account" "runtime" {
  # checkov:skip=CKV_AZURE_33: queue service logging goes to Log Analytics through diagnostic settings (network.tf), not classic storage analytics
  # checkov:skip=CKV2_AZURE_1: customer-managed keys are the operator's choice; Microsoft-managed keys encrypt at rest
  # checkov:skip=CKV2_AZURE_33: its private endpoints (blob, queue) are in network.tf, created from var.network, which a precondition requires while public access is off
  # checkov:skip=CKV_AZURE_206: replication is a cost choice; the account holds the app's package and queues, not backups
  name                            = var.runtime_storage_account_name
  resource_group_name             = var.resource_group_name
  location                        = var.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  shared_access_key_enabled       = false
  allow_nested_items_to_be_public = false
  public_network_access_enabled   = var.public_network_access
  default_to_oauth_authentication = true
  local_user_enabled              = false

  network_rules {
    default_action = var.public_network_access ? "Allow" : "Deny"
    bypass         = ["AzureServices"]
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  sas_policy {
    expiration_period = "01.00:00:00"
  }

  tags = var.tags
}

resource "azurerm_storage_container" "package" {
  # checkov:skip=CKV2_AZURE_21: blob reads, writes and deletes of the account go to Log Analytics through the diagnostic settings in network.tf
  name                  = "app-package"
  storage_account_id    = azurerm_storage_account.runtime.id
  container_access_type = "private"
}

resource "azurerm_storage_queue" "this" {
  for_each           = toset(local.queues)
  name               = each.key
  storage_account_id = azurerm_storage_account.runtime.id
}

resource "azurerm_service_plan" "this" {
  # checkov:skip=CKV_AZURE_225: zone balancing is a Premium/Dedicated plan setting; a Flex Consumption (FC1) plan has no instances of its own to spread
  # checkov:skip=CKV_AZURE_212: FC1 scales from zero per queue message; a failed instance's job is delivered again from the queue
  name                = "${var.name}-plan"
  resource_group_name = var.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = var.tags
}

resource "azurerm_function_app_flex_consumption" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  service_plan_id     = azurerm_service_plan.this.id

  runtime_name           = "custom"
  runtime_version        = "1.0"
  instance_memory_in_mb  = var.instance_memory_mb
  maximum_instance_count = var.maximum_instance_count

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.runtime.primary_blob_endpoint}${azurerm_storage_container.package.name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.this.id

  https_only                      = true
  public_network_access_enabled   = var.public_network_access
  virtual_network_subnet_id       = var.network == null ? null : var.network.app_subnet_id
  key_vault_reference_identity_id = azurerm_user_assigned_identity.this.id

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.this.id]
  }

  site_config {
    minimum_tls_version                    = "1.2"
    application_insights_connection_string = azurerm_application_insights.this.connection_string
  }

  app_settings = merge(local.storage_settings, local.secret_references, {
    # The host's own storage and the queue bindings' connection, by identity (no keys).
    AzureWebJobsStorage__accountName = azurerm_storage_account.runtime.name
    AzureWebJobsStorage__credential  = "managedidentity"
    AzureWebJobsStorage__clientId    = azurerm_user_assigned_identity.this.client_id
    JobsStorage__queueServiceUri     = azurerm_storage_account.runtime.primary_queue_endpoint
    JobsStorage__credential          = "managedidentity"
    JobsStorage__clientId            = azurerm_user_assigned_identity.this.client_id

    BACKUP_SCHEDULE              = var.schedule
    BACKUP_PLAN                  = jsonencode([for m in var.backup_plan : jsondecode(m)])
    BACKUP_FUNCTION_TIMEOUT_SECS = tostring(var.function_timeout_seconds)
    BACKUP_HANDOFF_MARGIN_SECS   = tostring(local.handoff_margin_secs)
    BACKUP_MEMORY_BUDGET         = local.memory_budget
  })

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.public_network_access || var.network != null
      error_message = "public_network_access = false needs network: the app reaches its storage and vault through private endpoints."
    }
  }
}
