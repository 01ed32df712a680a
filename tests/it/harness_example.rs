//! The harness as an embedder uses it: unit-testing link rules on typed events, through the
//! public API only.

use chrono::Duration;
use passkey_links::domain::{Change, CheckFailure, CodeEvent, Delivery, DomainError};
use passkey_links::testing::given;

use crate::common::*;

#[test]
fn a_returned_code_works_once_and_then_records_each_misuse() {
    let mut history = world();
    history.extend(returned_code(1, t0(), 1));
    given(history)
        .when(&check(1, secret(1)), t0() + Duration::minutes(5))
        .then([])
        .when(&check(1, secret(2)), t0() + Duration::minutes(6))
        .then_refused(
            [Change::code(
                &code(1),
                CodeEvent::CheckFailed {
                    reason: CheckFailure::WrongSecret,
                },
            )],
            DomainError::CodeInvalid(CheckFailure::WrongSecret),
        );
}

#[test]
fn issuing_through_the_public_decision() {
    given(world())
        .when(&issue(1, Delivery::Returned), t0())
        .then(returned_code(1, t0(), 1));
}
