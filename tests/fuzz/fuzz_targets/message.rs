//! Job message parsing: any bytes give a message or an error, never a panic; an accepted
//! message survives a round trip (serialise, parse again: the same message), so what the
//! worker runs is exactly what was accepted.
#![no_main]

use backup_common::message::JobMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = JobMessage::parse_bytes(data) else {
        return;
    };
    let text = serde_json::to_string(&message).expect("an accepted message serialises");
    let again = JobMessage::parse(&text).expect("an accepted message parses again");
    assert_eq!(again, message);
});
