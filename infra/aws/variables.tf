variable "name" {
  type        = string
  description = "Prefix of every resource name (function, queues, log group, key alias)."
  default     = "backup-worker"
  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,39}$", var.name))
    error_message = "name: 1-40 letters, digits or hyphens, starting with a letter."
  }
}

variable "bootstrap_zip" {
  type        = string
  description = "Path of the Lambda package built by infra/package.sh (dist/aws-<architecture>/bootstrap.zip)."
}

variable "architecture" {
  type        = string
  description = "Lambda architecture the bootstrap zip was built for: x86_64 or arm64."
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_mb" {
  type        = number
  description = "Function memory in MB. Half of it is the worker's memory budget for file data (BACKUP_MEMORY_BUDGET), shared by every job of a batch."
  default     = 1024
  validation {
    condition     = var.memory_mb >= 256 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 256 and 10240."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "Function timeout. The worker hands unfinished work back to the queue a margin before it (a tenth of it, at least 30 s)."
  default     = 900
  validation {
    condition     = var.timeout_seconds >= 120 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 120 and 900 (Lambda's maximum)."
  }
}

variable "batch_size" {
  type        = number
  description = "Job messages one invocation takes at once. They run concurrently inside one memory budget; each job holds at most chunk_size x upload_concurrency of it."
  default     = 4
  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10
    error_message = "batch_size must be between 1 and 10."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Deliveries of a job message before it moves to the dead-letter queue."
  default     = 5
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 100
    error_message = "max_receive_count must be between 1 and 100."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch keeps the function's logs (one JSON result per job)."
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

variable "storages" {
  type = map(object({
    type    = string
    options = optional(map(string), {})
  }))
  description = "Storage profiles by name (the names job messages use): type sftp, azureblob or azurefiles, and their non-secret options (SSH_HOST, ACCOUNT_NAME, CONTAINER, MAX_CONNECTIONS, ...). Secrets go into the Secrets Manager secrets of storage_secret_arns."
  validation {
    condition     = alltrue([for name, s in var.storages : can(regex("^[a-z][a-z0-9_]{0,62}$", name))])
    error_message = "storage names: lower-case letters, digits and underscores, starting with a letter (they become BACKUP_STORAGE_<NAME>_...)."
  }
  validation {
    condition     = alltrue([for s in values(var.storages) : contains(["sftp", "azureblob", "azurefiles"], s.type)])
    error_message = "storage type must be sftp, azureblob or azurefiles."
  }
  validation {
    condition = alltrue(flatten([for s in values(var.storages) : [
      for k in keys(s.options) : !contains(["SSH_PASSWORD", "SSH_PRIVATE_KEY", "SSH_PRIVATE_KEY_PASSPHRASE", "ACCOUNT_KEY", "CONNECTION_STRING", "SAS_URL", "RESTIC_PASSWORD", "CLIENT_SECRET", "CLIENT_CERTIFICATE_PASSWORD", "PASSWORD"], k)
    ]]))
    error_message = "secrets (SSH_PASSWORD, SSH_PRIVATE_KEY, ACCOUNT_KEY, CONNECTION_STRING, SAS_URL, RESTIC_PASSWORD, ...) must not be options: put them in a Secrets Manager secret listed in storage_secret_arns."
  }
  validation {
    condition = alltrue([for s in values(var.storages) :
      !contains(keys(s.options), "MAX_CONNECTIONS") || can(tonumber(s.options["MAX_CONNECTIONS"])) && try(tonumber(s.options["MAX_CONNECTIONS"]) >= 1 && tonumber(s.options["MAX_CONNECTIONS"]) <= 256, false)
    ])
    error_message = "MAX_CONNECTIONS must be a number from 1 to 256."
  }
}

variable "storage_secret_arns" {
  type        = list(string)
  description = "ARNs of Secrets Manager secrets holding the storages' secret options as JSON ({\"BACKUP_STORAGE_OFFICE_NAS_SSH_PASSWORD\": \"...\"}). Create them outside Terraform so no value is in its state; the function may read these and nothing else."
  default     = []
  validation {
    condition     = alltrue([for arn in var.storage_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", arn))])
    error_message = "storage_secret_arns must be Secrets Manager secret ARNs."
  }
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "The KMS key the storage secrets are encrypted with, when it is not the key this module creates (null: the secrets use this module's key or the AWS managed key)."
  default     = null
}

variable "backup_plans" {
  type = map(object({
    schedule = string
    timezone = optional(string, "UTC")
    message  = string
  }))
  description = "Scheduled jobs by name: an EventBridge Scheduler expression (cron(...), rate(...) or at(...)), its time zone, and the job message (JSON) it puts on the job queue."
  default     = {}
  validation {
    condition     = alltrue([for p in values(var.backup_plans) : can(regex("^(cron|rate|at)\\(.+\\)$", p.schedule))])
    error_message = "schedule must be cron(...), rate(...) or at(...)."
  }
  validation {
    condition     = alltrue([for p in values(var.backup_plans) : can(jsondecode(p.message).kind) && can(jsondecode(p.message).job_id)])
    error_message = "message must be a JSON job message with kind and job_id."
  }
  validation {
    condition = alltrue([for p in values(var.backup_plans) :
      try(jsondecode(p.message).options.upload_concurrency, 16) >= 1 && try(jsondecode(p.message).options.upload_concurrency, 16) <= 256
    ])
    error_message = "options.upload_concurrency must be from 1 to 256."
  }
  validation {
    condition = alltrue([for p in values(var.backup_plans) :
      can(regex("^[0-9]+(B|KiB|MiB)?$", try(jsondecode(p.message).options.chunk_size, "4MiB")))
    ])
    error_message = "options.chunk_size must be a size like 4MiB (64KiB to 100MiB; at most 4MiB for Azure Files)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
  default     = {}
}

variable "max_concurrency" {
  type        = number
  description = "Most function instances the job queue drives at once (the event source mapping's maximum concurrency and the function's reserved concurrency): how wide a big job fans out."
  default     = 10
  validation {
    condition     = var.max_concurrency >= 2 && var.max_concurrency <= 1000
    error_message = "max_concurrency must be between 2 and 1000."
  }
}

variable "vpc" {
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  description = "Run the function in these subnets (they need a route to the SFTP servers and to Azure); null: outside a VPC."
  default     = null
}

variable "create_storage_secret" {
  type        = bool
  description = "Create the secret <name>/storages (empty, encrypted with the module's key) for the storages' secret options; put its value before the first job runs."
  default     = true
}
