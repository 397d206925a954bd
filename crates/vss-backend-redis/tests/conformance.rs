//! The core's conformance suite, model test and races against a real Redis
//! (the shared test server, AOF on: `VSS_TEST_REDIS_URL`), one named test per rule.

mod common;

use std::sync::Arc;

use vss_core::conformance::Subject;

vss_core::conformance_tests!(|| async {
    let url = common::redis_url()?;
    Some(Subject::admin(Arc::new(common::connect(&url).await)))
});
