//! A fresh link from a dead one: the user whose link expired (or was superseded) asks with it,
//! instead of filing a support ticket. The dead link's secret is the credential; the new link
//! goes to the address on file by the ordinary send, under its rules and rate limit; and the
//! answer is the same whether or not anything was sent.

use super::access::Guard;
use super::redeem::present;
use super::{Op, PasskeyLinks};
use crate::domain::ReadDeadLink;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::link::UrlTemplate;
use crate::ports::authorizer::{Authorizer, Caller};
use crate::ports::clock::Clock;
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::EventStore;
use crate::wire::{RequestFreshLinkRequest, RequestFreshLinkResponse};

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// A fresh link for the holder of a dead one: when the presented secret is the secret of a
    /// link that died only of age (expired, or superseded by a newer link) — never one that was
    /// consumed, revoked, exhausted, failed delivery or was killed by a stop of its user or org
    /// or an email change — and the user can receive links, a new link is emailed to the
    /// verified address on file (never to one from the request), as the user's own send would
    /// be: the per-user rate limit applies, and it supersedes the user's earlier links once
    /// sent. The answer is the same acknowledgement whether or not anything was sent.
    ///
    /// # Errors
    /// Only what tells nothing about the link: InvalidArgument for malformed ids, and
    /// Unavailable when the store could not be read (nothing was decided: ask again).
    pub async fn request_fresh_link(
        &self,
        request: RequestFreshLinkRequest,
    ) -> Result<RequestFreshLinkResponse, Error> {
        let op = Op::new("passkey_links.request_fresh_link")
            .user(&request.user_id)
            .code(&request.code_id)
            .input(request.code.digest().as_bytes());
        self.traced(op, async {
            let presented = present(request.user_id, request.code_id, request.code)?;
            let dead = ReadDeadLink(presented.clone());
            let read = match self.execute(&dead, &Guard::Open).await {
                Ok(read) => read,
                // Not renewable, for whatever reason: the same answer.
                Err(err) if err.domain_error().is_some() => {
                    return Ok(RequestFreshLinkResponse::default());
                }
                Err(err) => return Err(err),
            };
            let view = read.view();
            let code = view
                .code(&presented.code_id)
                .map_err(|_| Error::internal("a read code without its state"))?;
            let Some(org_id) = code.issued().map(|issued| issued.org_id.clone()) else {
                return Ok(RequestFreshLinkResponse::default());
            };
            // The new link is rendered as the old one was, if it named a template the
            // configuration still allows (the issuance checks that again).
            let template = code
                .url_template()
                .and_then(|raw| UrlTemplate::parse(raw).ok());
            self.send_fresh_link(presented.user_id, org_id, template)
                .await;
            Ok(RequestFreshLinkResponse::default())
        })
        .await
    }

    /// The user's own send, as if they asked while signed in; its outcome is not the caller's
    /// business (it would tell whether the link was renewable).
    async fn send_fresh_link(&self, user_id: UserId, org_id: OrgId, template: Option<UrlTemplate>) {
        let me = Caller::user(user_id.clone(), org_id.clone());
        let sent = self
            .issue_and_send(&me, Guard::Open, user_id, Some(org_id), template)
            .await;
        #[cfg(feature = "tracing")]
        if let Err(err) = &sent {
            tracing::info!(error = %err.id(), "no fresh link was sent");
        }
        drop(sent);
    }
}
