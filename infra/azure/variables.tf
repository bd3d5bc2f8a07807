variable "name" {
  type        = string
  description = "Prefix of every resource name (function app, plan, identity, vault, insights)."
  default     = "backup-worker"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name))
    error_message = "name: 2-24 lower-case letters, digits or hyphens, starting with a letter (Key Vault names are at most 24 characters)."
  }
}

variable "resource_group_name" {
  type        = string
  description = "The resource group everything is created in (it must exist)."
}

variable "location" {
  type        = string
  description = "Azure region of every resource (e.g. westeurope); no default, nothing region-specific is assumed."
}

variable "runtime_storage_account_name" {
  type        = string
  description = "Name of the storage account this module creates for the function app's runtime, its package and the job queues (3-24 lower-case letters and digits, globally unique)."
  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.runtime_storage_account_name))
    error_message = "runtime_storage_account_name: 3-24 lower-case letters and digits."
  }
}

variable "instance_memory_mb" {
  type        = number
  description = "Flex Consumption instance memory (2048 or 4096 MB). Half of it is the worker's memory budget for file data (BACKUP_MEMORY_BUDGET)."
  default     = 2048
  validation {
    condition     = contains([2048, 4096], var.instance_memory_mb)
    error_message = "instance_memory_mb must be 2048 or 4096."
  }
}

variable "maximum_instance_count" {
  type        = number
  description = "Most instances the job queue scales the app to: how wide a big job fans out."
  default     = 10
  validation {
    condition     = var.maximum_instance_count >= 1 && var.maximum_instance_count <= 1000
    error_message = "maximum_instance_count must be between 1 and 1000."
  }
}

variable "function_timeout_seconds" {
  type        = number
  description = "How long one invocation may run (host.json functionTimeout); the worker hands unfinished work back a tenth of it (at least 30 s) before."
  default     = 600
  validation {
    condition     = var.function_timeout_seconds >= 120 && var.function_timeout_seconds <= 3600
    error_message = "function_timeout_seconds must be between 120 and 3600."
  }
}

variable "storages" {
  type = map(object({
    type    = string
    options = optional(map(string), {})
  }))
  description = "Storage profiles by name (the names job messages use): type sftp, azureblob or azurefiles and their non-secret options. Azure storages authenticate with the app's managed identity (USE_MSI and MSI_CLIENT_ID are set for them); secrets come from Key Vault (secret_settings)."
  validation {
    condition     = alltrue([for name, s in var.storages : can(regex("^[a-z][a-z0-9_]{0,62}$", name))])
    error_message = "storage names: lower-case letters, digits and underscores, starting with a letter."
  }
  validation {
    condition     = alltrue([for s in values(var.storages) : contains(["sftp", "azureblob", "azurefiles"], s.type)])
    error_message = "storage type must be sftp, azureblob or azurefiles."
  }
  validation {
    condition = alltrue(flatten([for s in values(var.storages) : [
      for k in keys(s.options) : !contains(["SSH_PASSWORD", "SSH_PRIVATE_KEY", "SSH_PRIVATE_KEY_PASSPHRASE", "ACCOUNT_KEY", "CONNECTION_STRING", "SAS_URL", "RESTIC_PASSWORD", "CLIENT_SECRET", "CLIENT_CERTIFICATE_PASSWORD", "PASSWORD"], k)
    ]]))
    error_message = "secrets must not be options: name them in secret_settings (Key Vault references)."
  }
  validation {
    condition = alltrue([for s in values(var.storages) :
      !contains(keys(s.options), "MAX_CONNECTIONS") || try(tonumber(s.options["MAX_CONNECTIONS"]) >= 1 && tonumber(s.options["MAX_CONNECTIONS"]) <= 256, false)
    ])
    error_message = "MAX_CONNECTIONS must be a number from 1 to 256."
  }
}

variable "secret_settings" {
  type        = map(string)
  description = "App settings whose values are Key Vault secrets: setting name (BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD) => secret name in this module's vault. Set the values with `az keyvault secret set`; they never pass through Terraform."
  default     = {}
  validation {
    condition     = alltrue([for setting, secret in var.secret_settings : can(regex("^BACKUP_STORAGE_[A-Z0-9_]+$", setting)) && can(regex("^[a-zA-Z0-9-]{1,127}$", secret))])
    error_message = "secret_settings: BACKUP_STORAGE_... setting names to Key Vault secret names (letters, digits, hyphens)."
  }
}

variable "blob_destinations" {
  type = list(object({
    storage_account_id = string
    container_name     = string
  }))
  description = "Blob containers the worker writes and reads (Storage Blob Data Contributor on each container, nothing wider)."
  default     = []
  validation {
    condition     = alltrue([for d in var.blob_destinations : can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", d.container_name))])
    error_message = "container_name: 3-63 lower-case letters, digits and single hyphens (Azure's container rule)."
  }
}

variable "file_share_destinations" {
  type = list(object({
    storage_account_id = string
    share_name         = string
  }))
  description = "Azure Files shares the worker writes and reads over OAuth (Storage File Data Privileged Contributor on each share)."
  default     = []
  validation {
    condition     = alltrue([for d in var.file_share_destinations : can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", d.share_name))])
    error_message = "share_name: 3-63 lower-case letters, digits and single hyphens (Azure's share rule)."
  }
}

variable "schedule" {
  type        = string
  description = "When the timer puts backup_plan on the job queue: an NCRONTAB expression with seconds (\"0 0 2 * * *\" is 02:00 UTC daily)."
  default     = "0 0 2 * * *"
  validation {
    condition     = length(split(" ", trimspace(var.schedule))) == 6
    error_message = "schedule must be a six-field NCRONTAB expression (seconds minutes hours day month weekday)."
  }
}

variable "backup_plan" {
  type        = list(string)
  description = "The job messages (JSON) the timer enqueues at each schedule; each is validated by the worker when the timer fires."
  default     = []
  validation {
    condition     = alltrue([for m in var.backup_plan : can(jsondecode(m).kind) && can(jsondecode(m).job_id)])
    error_message = "each backup_plan entry must be a JSON job message with kind and job_id."
  }
  validation {
    condition = alltrue([for m in var.backup_plan :
      try(jsondecode(m).options.upload_concurrency, 16) >= 1 && try(jsondecode(m).options.upload_concurrency, 16) <= 256
    ])
    error_message = "options.upload_concurrency must be from 1 to 256."
  }
}

variable "public_network_access" {
  type        = bool
  description = "Whether the function app, its storage account and the vault accept traffic from public networks. Off by default: the app only pulls from its queue; deploy its package from a network that can reach it, or turn this on for the deployment."
  default     = false
}

variable "log_retention_days" {
  type        = number
  description = "Days Log Analytics keeps Application Insights data (one JSON result per job)."
  default     = 90
  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
  default     = {}
}

variable "network" {
  type = object({
    app_subnet_id              = string
    private_endpoint_subnet_id = string
    private_dns_zone_ids       = optional(map(string), {})
  })
  description = "Private networking, required while public_network_access is false: the subnet the app is integrated into (delegated to Microsoft.App/environments), the subnet for the private endpoints of its storage account (blob, queue) and vault, and optionally the private DNS zone ids by endpoint (blob, queue, vault) to register them in."
  default     = null
}
