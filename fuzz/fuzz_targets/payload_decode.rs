//! The webhook body decoder must turn any bytes into a notification or an error; what it
//! accepts, the encoder must turn into a body the decoder accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = amrelay::payload::nesting_exceeds(data, 32);
    if let Ok(notification) = amrelay::payload::decode(data) {
        let all: Vec<usize> = (0..notification.alerts.len()).collect();
        let mut body = Vec::new();
        amrelay::payload::encode(&notification, &all, 1, &mut body);
        if let Err(e) = amrelay::payload::decode(&body) {
            panic!("re-encoded body does not decode: {e}: {}", String::from_utf8_lossy(&body));
        }
    }
});
