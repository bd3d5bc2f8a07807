# The job queue (messages from schedules, operators and the worker's own fan-out), its
# dead-letter queue, and the queue every job's result is sent to.

resource "aws_sqs_queue" "dead_letters" {
  name                              = "${var.name}-jobs-dlq"
  message_retention_seconds         = 1209600 # 14 days to look at what failed
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_sqs_queue" "jobs" {
  name = "${var.name}-jobs"
  # Longer than the function may run (AWS advises six times), so a message being worked on is
  # not delivered again meanwhile.
  visibility_timeout_seconds        = var.timeout_seconds * 6
  message_retention_seconds         = 345600 # 4 days
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

resource "aws_sqs_queue" "results" {
  name                              = "${var.name}-results"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}
