//! Storage secrets from AWS Secrets Manager: `BACKUP_SECRETS_ID` names one or more secrets
//! (names or ARNs, comma-separated) whose values are a JSON object of `BACKUP_STORAGE_…`
//! variables (the console's key/value form) or `KEY=VALUE` lines. Read once per cold start;
//! the function's environment wins over them. Errors name the secret, never its value.

use std::collections::HashMap;

use backup_common::config::parse_secret_text;

pub const SECRETS_ID_VAR: &str = "BACKUP_SECRETS_ID";

pub async fn load(config: &aws_config::SdkConfig) -> Result<HashMap<String, String>, String> {
    let Ok(ids) = std::env::var(SECRETS_ID_VAR) else {
        return Ok(HashMap::new());
    };
    let client = aws_sdk_secretsmanager::Client::new(config);
    let mut vars = HashMap::new();
    for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let answer = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                format!(
                    "cannot read Secrets Manager secret `{id}` ({SECRETS_ID_VAR}): {}: {}. Check the name and that the function's role may call secretsmanager:GetSecretValue on it",
                    e.meta().code().unwrap_or("error"),
                    e.meta().message().unwrap_or("no message")
                )
            })?;
        let text = answer.secret_string().ok_or_else(|| {
            format!("Secrets Manager secret `{id}` holds binary data; store the variables as a JSON object or KEY=VALUE lines")
        })?;
        let parsed = parse_secret_text(text)
            .map_err(|why| format!("Secrets Manager secret `{id}` {why}"))?;
        tracing::info!(
            secret = id,
            variables = parsed.len(),
            "storage secrets loaded"
        );
        vars.extend(parsed);
    }
    Ok(vars)
}
