//! Any text as the value of any setting (the first byte picks it, by its
//! environment variable): loading answers a configuration or an error,
//! never a panic, and never echoes a secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vss_server::config::settings_list;
use vss_server::Config;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    let settings = settings_list();
    let setting = &settings[usize::from(selector) % settings.len()];
    let result = Config::from_sources(["vss-server"], &|name| {
        (name == setting.env).then(|| value.to_string())
    });
    if let Err(err) = result {
        if setting.secret && value.len() >= 6 {
            assert!(!err.to_string().contains(value), "a secret echoed");
        }
    }
});
