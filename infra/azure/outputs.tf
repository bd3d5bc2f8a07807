output "function_app_name" {
  description = "The Function App's name (for `az functionapp deployment source config-zip`)."
  value       = azurerm_function_app_flex_consumption.this.name
}

output "job_queue_url" {
  description = "Where to put job messages (base64-encoded, as host.json's messageEncoding says)."
  value       = "${azurerm_storage_account.runtime.primary_queue_endpoint}backup-jobs"
}

output "poison_queue_url" {
  description = "Job messages that failed maxDequeueCount times."
  value       = "${azurerm_storage_account.runtime.primary_queue_endpoint}backup-jobs-poison"
}

output "results_queue_url" {
  description = "Every job's JSON result."
  value       = "${azurerm_storage_account.runtime.primary_queue_endpoint}backup-results"
}

output "identity_client_id" {
  description = "Client id of the app's user-assigned identity (the storages' MSI_CLIENT_ID)."
  value       = azurerm_user_assigned_identity.this.client_id
}

output "identity_principal_id" {
  description = "Principal id of the app's identity (to grant it more, one resource at a time)."
  value       = azurerm_user_assigned_identity.this.principal_id
}

output "key_vault_name" {
  description = "The vault to put the storages' secrets in (`az keyvault secret set --vault-name ...`)."
  value       = azurerm_key_vault.this.name
}

output "application_insights_name" {
  description = "Where the app's logs and job results are."
  value       = azurerm_application_insights.this.name
}

output "handoff_margin_seconds" {
  description = "How long before its timeout an invocation hands unfinished work back."
  value       = local.handoff_margin_secs
}
