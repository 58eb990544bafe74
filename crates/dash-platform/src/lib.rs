//! The local platform: a cluster on this machine, its failover engine and
//! the API, started and stopped as one. `dashctl up`, the chaos engine's
//! private platforms and the test kit's clusters all start it the same way.

mod platform;
mod scratch;

pub use platform::{Platform, PlatformError};
pub use scratch::ScratchCluster;
