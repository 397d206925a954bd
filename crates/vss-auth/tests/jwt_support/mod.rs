//! The JWT tests' keys (`fixtures/jwt/`) and token minting.
#![allow(dead_code, clippy::unwrap_used)]

pub const PRIVATE_PEM: &str = include_str!("../fixtures/jwt/rs256-private.pem");
pub const PUBLIC_PEM: &str = include_str!("../fixtures/jwt/rs256-public.pem");
pub const PUBLIC_PKCS1_PEM: &str = include_str!("../fixtures/jwt/rs256-public-pkcs1.pem");
pub const OTHER_PRIVATE_PEM: &str = include_str!("../fixtures/jwt/other-private.pem");
pub const RSA1024_PUBLIC_PEM: &str = include_str!("../fixtures/jwt/rsa1024-public.pem");

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RS256 token signed with `private_pem` carrying `claims`.
pub fn sign(private_pem: &str, claims: &serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &key,
    )
    .unwrap()
}

/// A valid token for `sub`, expiring in an hour.
pub fn valid_token(sub: &str) -> String {
    sign(
        PRIVATE_PEM,
        &serde_json::json!({ "sub": sub, "exp": now() + 3600 }),
    )
}
