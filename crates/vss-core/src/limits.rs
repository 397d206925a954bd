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
}

/// The protocol's ceiling for items in one put.
pub const PROTOCOL_MAX_ITEMS_PER_PUT: usize = 1000;

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_items_per_put: PROTOCOL_MAX_ITEMS_PER_PUT,
            max_page_size: 100,
            default_page_size: 100,
        }
    }
}
