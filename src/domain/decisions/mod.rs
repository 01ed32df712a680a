//! The decisions that span aggregates — issuing, delivering, checking and revoking a code,
//! renewing a dead one, registering a passkey with it, managing passkeys, logging in with one —
//! each in its own file with its rule tests. Single-aggregate decisions live with their
//! aggregate and are re-exported here, so every decision has one import path.

mod check;
mod deliver;
mod fresh;
mod issue;
mod login;
mod passkeys;
mod read;
mod register;
mod revoke;

pub use super::org::{AddOrg, ChangeOrg, DirectoryState, EnsureOrg, OrgChange};
pub use super::user::{
    AddHuman, AddMachine, ChangeUser, EnsureHuman, EnsureMachine, ErasePersonalData, UserChange,
};
pub use check::{CheckCode, PresentCode};
pub use deliver::{
    DeliveryOutcome, PendingDelivery, ReadCode, ReadDelivery, RecordDelivery, pending_delivery,
};
pub use fresh::ReadDeadLink;
pub use issue::{Delivery, IssueCode};
pub use login::{FinishPasskeyLogin, ReadLogin, ReadLoginUser};
pub use passkeys::{ReadUser, RemovePasskey};
pub use read::{ReadOrg, ReadUserAndOrg, is_live};
pub use register::{FinishPasskeyRegistration, ReadCeremony, StartPasskeyRegistration};
pub use revoke::{NamedCode, RedeliverCode, RevokeCode};
