//! The config loader must turn any text into a config or a list of errors. The config's folder
//! does not exist, so relative secret and TLS paths fail to read rather than touching real files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/amrelay-fuzz/amrelay.yml");
    if let Err(error) = amrelay::config::from_str(text, path, &amrelay::config::Environment::empty()) {
        let _ = error.to_string();
    }
});
