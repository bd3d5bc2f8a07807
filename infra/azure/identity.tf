# Everything the app may do, as role assignments of its user-assigned identity, each scoped to
# one resource: the destination containers and shares, the job queues, its own runtime storage
# and the vault. Nothing at subscription or resource-group scope.

locals {
  runtime_id = azurerm_storage_account.runtime.id
  principal  = azurerm_user_assigned_identity.this.principal_id
}

resource "azurerm_role_assignment" "blob_destination" {
  for_each             = { for d in var.blob_destinations : "${d.storage_account_id}/${d.container_name}" => d }
  scope                = "${each.value.storage_account_id}/blobServices/default/containers/${each.value.container_name}"
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "file_share_destination" {
  for_each             = { for d in var.file_share_destinations : "${d.storage_account_id}/${d.share_name}" => d }
  scope                = "${each.value.storage_account_id}/fileServices/default/fileshares/${each.value.share_name}"
  role_definition_name = "Storage File Data Privileged Contributor"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
}

# The job queue: taken from (trigger) and sent to (fan-out, the timer's plan).
resource "azurerm_role_assignment" "jobs_processor" {
  scope                = "${local.runtime_id}/queueServices/default/queues/backup-jobs"
  role_definition_name = "Storage Queue Data Message Processor"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
  depends_on           = [azurerm_storage_queue.this]
}

resource "azurerm_role_assignment" "queue_sender" {
  for_each             = toset(["backup-jobs", "backup-jobs-poison", "backup-results"])
  scope                = "${local.runtime_id}/queueServices/default/queues/${each.key}"
  role_definition_name = "Storage Queue Data Message Sender"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
  depends_on           = [azurerm_storage_queue.this]
}

# The Functions host keeps leases and its package in its own account (identity-based
# AzureWebJobsStorage needs Blob Data Owner there), and reads the poison queue's settings.
resource "azurerm_role_assignment" "runtime_blobs" {
  scope                = local.runtime_id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "runtime_queues" {
  scope                = local.runtime_id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "vault_secrets" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = local.principal
  principal_type       = "ServicePrincipal"
}
