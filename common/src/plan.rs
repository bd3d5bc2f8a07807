//! A backup plan: the job messages a schedule puts on the queue. Operators keep it in an app
//! setting or a mounted file (`BACKUP_PLAN` / `BACKUP_PLAN_FILE`); each entry is validated
//! like any message, so a bad plan fails at the schedule, not later on a worker.

use crate::error::{Error, Result};
use crate::message::JobMessage;

pub const PLAN_VAR: &str = "BACKUP_PLAN";
pub const PLAN_FILE_VAR: &str = "BACKUP_PLAN_FILE";

/// A validated plan: each job as the message text to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub jobs: Vec<String>,
}

impl Plan {
    /// Parse a JSON array of job messages. Errors name the entry (`plan[2].options.chunk_size`).
    pub fn parse(text: &str) -> Result<Plan> {
        let entries: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
            Error::MalformedMessage(format!(
                "the backup plan is not a JSON array of job messages: {e}"
            ))
        })?;
        let mut jobs = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let text = entry.to_string();
            JobMessage::parse(&text).map_err(|e| match e {
                Error::InvalidField { field, reason } => Error::InvalidField {
                    field: format!("plan[{i}].{field}"),
                    reason,
                },
                other => Error::InvalidField {
                    field: format!("plan[{i}]"),
                    reason: other.to_string(),
                },
            })?;
            jobs.push(text);
        }
        Ok(Plan { jobs })
    }

    /// The plan from `BACKUP_PLAN` (inline JSON) or the file `BACKUP_PLAN_FILE` names.
    pub fn from_env() -> Result<Plan> {
        if let Ok(text) = std::env::var(PLAN_VAR) {
            return Plan::parse(&text);
        }
        if let Ok(path) = std::env::var(PLAN_FILE_VAR) {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::MalformedMessage(format!("cannot read {PLAN_FILE_VAR}={path}: {e}"))
            })?;
            return Plan::parse(&text);
        }
        Err(Error::MalformedMessage(format!(
            "no backup plan: set {PLAN_VAR} to a JSON array of job messages, or {PLAN_FILE_VAR} to a file holding one"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = r#"{"kind": "backup", "job_id": "a", "source": {"storage": "nas", "path": "/x"},
        "destination": {"storage": "archive", "container": "backups"}}"#;

    #[test]
    fn a_plan_is_a_list_of_valid_messages() {
        let plan = Plan::parse(&format!("[{JOB}, {JOB}]")).unwrap();
        assert_eq!(plan.jobs.len(), 2);
        assert!(JobMessage::parse(&plan.jobs[0]).is_ok());
    }

    #[test]
    fn a_bad_entry_is_named_by_its_index() {
        let bad = JOB.replace("\"a\"", "\"bad id!\"");
        let e = Plan::parse(&format!("[{JOB}, {bad}]")).unwrap_err();
        assert!(e.to_string().contains("`plan[1].job_id`"), "{e}");
        assert!(Plan::parse("{}")
            .unwrap_err()
            .to_string()
            .contains("JSON array"));
    }
}
