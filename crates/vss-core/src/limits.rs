//! What a backend supports.

/// Limits a store declares; validation and the conformance suite follow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most items (`transaction_items` plus `delete_items`) one put may hold.
    /// The protocol allows up to 1000; a backend may declare fewer.
    pub max_items_per_put: usize,
    /// Largest page a listing returns; bigger requested sizes are clamped to it.
    pub max_page_size: i32,
    /// Page size used when a listing request gives none (or a negative one).
    pub default_page_size: i32,
    /// Largest value, in bytes, the store can hold under one key. A put with
    /// a bigger value is refused with [`crate::VssError::TooLarge`] before
    /// anything is written (the database would fail it, again on every retry).
    pub max_value_size: usize,
    /// Whether the store enforces the [`crate::Quota`] given to
    /// [`crate::KvStore::put_with_quota`]. A store that does not refuses
    /// every put that carries a quota, and a server refuses to start with
    /// quotas over it; the conformance suite's quota rules run when it does.
    pub enforces_quotas: bool,
}

/// The protocol's ceiling for items in one put.
pub const PROTOCOL_MAX_ITEMS_PER_PUT: usize = 1000;

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_items_per_put: PROTOCOL_MAX_ITEMS_PER_PUT,
            max_page_size: 100,
            default_page_size: 100,
            max_value_size: usize::MAX,
            enforces_quotas: false,
        }
    }
}
