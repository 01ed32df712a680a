//! The decisions that span aggregates — issuing, delivering, checking, consuming and revoking a
//! code — each in its own file with its rule tests. Single-aggregate decisions live with their
//! aggregate and are re-exported here, so every decision has one import path.

mod check;
mod consume;
mod deliver;
mod issue;
mod revoke;

pub use super::org::{AddOrg, ChangeOrg, OrgChange};
pub use super::user::{AddHuman, AddMachine, ChangeUser, UserChange};
pub use check::{CheckCode, PresentCode};
pub use consume::ConsumeCode;
pub use deliver::{DeliveryOutcome, RecordDelivery};
pub use issue::{Delivery, IssueCode};
pub use revoke::RevokeCode;
