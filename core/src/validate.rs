//! The grammars live in `capstan_proto::validate`, one copy for the core and the agent
//! (the agent re-checks every desired-state value with them). Re-exported here so core
//! code names them `crate::validate`; their [`Invalid`] error becomes `ApiError::Invalid`
//! (422 naming the field) through `From` in `error.rs`.

pub use capstan_proto::validate::*;
