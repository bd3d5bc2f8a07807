//! Assertions on Test Connection results, shared by the tests of every storage.

use backup_common::result::CheckResult;

/// The check failed at `step` with the stable `code`, and its message holds every one of `words`.
pub fn assert_failed(c: &CheckResult, step: &str, code: &str, words: &[&str]) {
    assert!(!c.ok, "{c:#?}");
    assert_eq!(c.failed_step.as_deref(), Some(step), "{c:#?}");
    let e = c.error.as_ref().expect("error");
    assert_eq!(e.code, code, "{c:#?}");
    for w in words {
        assert!(e.message.contains(w), "{:?} lacks {w:?}", e.message);
    }
}
