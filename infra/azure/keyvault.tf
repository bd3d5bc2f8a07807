# The storages' secrets (SSH passwords and keys, repository passwords, account keys) live here;
# the app reads them as Key Vault references with its identity. Terraform creates the vault,
# never the values.

data "azurerm_client_config" "current" {}

resource "azurerm_key_vault" "this" {
  # checkov:skip=CKV_AZURE_189: public access follows var.public_network_access (off by default)
  # checkov:skip=CKV2_AZURE_32: its private endpoint is in network.tf, created from var.network, which a precondition requires while public access is off
  name                          = "${var.name}-kv"
  resource_group_name           = var.resource_group_name
  location                      = var.location
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = var.public_network_access

  network_acls {
    default_action = var.public_network_access ? "Allow" : "Deny"
    bypass         = "AzureServices"
  }

  tags = var.tags
}
