//! Any page token: refused with INVALID_REQUEST (random text is never a
//! token of this listing), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vss_core::page::PageToken;
use vss_core::{UserToken, VssError};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let user = UserToken::new("u").expect("a user");
    let result = PageToken::decode(token, &user, "s", "p");
    assert!(matches!(result, Err(VssError::InvalidRequest(_))), "{result:?}");
});
