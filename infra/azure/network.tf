# With public network access off, the app reaches its storage account and vault through private
# endpoints in the operator's network and goes out (to SFTP servers, to Azure) through its
# integrated subnet.

locals {
  endpoints = var.network == null ? {} : {
    blob  = { resource_id = azurerm_storage_account.runtime.id, subresource = "blob" }
    queue = { resource_id = azurerm_storage_account.runtime.id, subresource = "queue" }
    vault = { resource_id = azurerm_key_vault.this.id, subresource = "vault" }
  }
}

resource "azurerm_private_endpoint" "this" {
  for_each            = local.endpoints
  name                = "${var.name}-${each.key}"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = var.network.private_endpoint_subnet_id

  private_service_connection {
    name                           = "${var.name}-${each.key}"
    private_connection_resource_id = each.value.resource_id
    subresource_names              = [each.value.subresource]
    is_manual_connection           = false
  }

  dynamic "private_dns_zone_group" {
    for_each = contains(keys(var.network.private_dns_zone_ids), each.key) ? [1] : []
    content {
      name                 = each.key
      private_dns_zone_ids = [var.network.private_dns_zone_ids[each.key]]
    }
  }

  tags = var.tags
}

# Who read, wrote and deleted what in the runtime account, into Log Analytics.
resource "azurerm_monitor_diagnostic_setting" "runtime" {
  for_each                   = toset(["blobServices", "queueServices"])
  name                       = "${var.name}-${each.key}"
  target_resource_id         = "${azurerm_storage_account.runtime.id}/${each.key}/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  dynamic "enabled_log" {
    for_each = ["StorageRead", "StorageWrite", "StorageDelete"]
    content {
      category = enabled_log.value
    }
  }
}
