//! Activities: the record of work done and decisions taken, with reasons.

use actix::Message;

pub use crate::wire::Activity;

/// Sent to the management actor to add an activity.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordActivity(pub Activity);
