output "function_name" {
  description = "The Lambda function's name (for `aws lambda invoke` and its log group)."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "The Lambda function's ARN."
  value       = aws_lambda_function.this.arn
}

output "job_queue_url" {
  description = "Where to send job messages (backup, restore, verify, check, forget, prune, test_connection)."
  value       = aws_sqs_queue.jobs.url
}

output "job_queue_arn" {
  description = "The job queue's ARN (to let other senders in)."
  value       = aws_sqs_queue.jobs.arn
}

output "dead_letter_queue_url" {
  description = "Job messages that failed max_receive_count times."
  value       = aws_sqs_queue.dead_letters.url
}

output "results_queue_url" {
  description = "Every job's JSON result."
  value       = aws_sqs_queue.results.url
}

output "log_group_name" {
  description = "The function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "kms_key_arn" {
  description = "The key encrypting the queues, logs and environment (grant senders kms:GenerateDataKey on it)."
  value       = aws_kms_key.this.arn
}

output "schedule_names" {
  description = "The EventBridge Scheduler schedules, one per backup plan."
  value       = [for s in aws_scheduler_schedule.plan : s.name]
}

output "handoff_margin_seconds" {
  description = "How long before its deadline an invocation hands unfinished work back (derived from timeout_seconds)."
  value       = local.handoff_margin_secs
}

output "storage_secret_arn" {
  description = "The secret to put the storages' secret options in (null when create_storage_secret is false)."
  value       = one(aws_secretsmanager_secret.storages[*].arn)
}
