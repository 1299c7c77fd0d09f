//! Rate limiting's pure core, shared by the L7 gateway (request limits) and
//! the L4 engine (connection rate per client): [`gcra`], the algorithm, and
//! [`store`], keyed state with bounded memory, and [`clients`], a listener's
//! per-client connection limits. No tokio, no clock: callers
//! pass `now` (nanoseconds on a monotonic clock of their choosing).

pub mod clients;
pub mod gcra;
pub mod store;

pub use gcra::{Decision, Rate};
pub use store::KeyedStore;
