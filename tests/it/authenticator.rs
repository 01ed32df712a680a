//! A software authenticator (webauthn-authenticator-rs's `SoftPasskey`: a real P-256 key and a
//! real packed self-attestation) playing the browser's part of a ceremony.
#![allow(dead_code)]

use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

/// The relying party the tests run: `id.example.com`.
pub const RP_ID: &str = "id.example.com";
/// Its origin.
pub const ORIGIN: &str = "https://id.example.com";

pub struct Authenticator {
    inner: SoftPasskey,
    origin: Url,
    /// Each credential it made, with the user handle it was made for (what a resident key
    /// keeps, and returns with a discoverable assertion).
    held: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Authenticator {
    /// An authenticator in a browser on `origin`.
    pub fn on(origin: &str) -> Self {
        Self {
            inner: SoftPasskey::new(true),
            origin: Url::parse(origin).unwrap(),
            held: Vec::new(),
        }
    }

    /// An authenticator in a browser on the relying party's origin.
    pub fn new() -> Self {
        Self::on(ORIGIN)
    }

    /// Answers `navigator.credentials.create(options)`, returning the `PublicKeyCredential`
    /// JSON a browser posts. The software authenticator stores no resident keys, so the client
    /// drops that instruction (the relying party cannot verify it either; the browser test with
    /// a virtual authenticator covers it).
    pub fn create(&mut self, options: &Value) -> Value {
        self.create_with(options, |_| {})
    }

    /// As [`Authenticator::create`], with the options tampered first.
    pub fn create_with(
        &mut self,
        options: &Value,
        tamper: impl FnOnce(&mut CreationChallengeResponse),
    ) -> Value {
        let mut options: CreationChallengeResponse =
            serde_json::from_value(options.clone()).unwrap();
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
            selection.resident_key = None;
        }
        tamper(&mut options);
        let handle = options.public_key.user.id.to_vec();
        let credential = self
            .inner
            .do_registration(self.origin.clone(), options)
            .unwrap();
        self.held.push((credential.raw_id.to_vec(), handle));
        serde_json::to_value(&credential).unwrap()
    }

    /// Answers `navigator.credentials.get(options)` (JSON in, the assertion JSON a browser
    /// posts out). Without `allowCredentials` (a discoverable login) it answers with the
    /// credential it made last, and returns the user handle it was made for, as a resident key
    /// does.
    pub fn get(&mut self, options: &Value) -> Value {
        let mut options: RequestChallengeResponse =
            serde_json::from_value(options.clone()).unwrap();
        let discoverable = options.public_key.allow_credentials.is_empty();
        let handle = if discoverable {
            let (id, handle) = self
                .held
                .last()
                .expect("a credential to answer with")
                .clone();
            options.public_key.allow_credentials = vec![webauthn_rs_proto::AllowCredentials {
                type_: "public-key".into(),
                id,
                transports: None,
            }];
            Some(handle)
        } else {
            None
        };
        let mut assertion = self
            .inner
            .do_authentication(self.origin.clone(), options)
            .unwrap();
        if let Some(handle) = handle {
            assertion.response.user_handle = Some(handle);
        }
        serde_json::to_value(&assertion).unwrap()
    }

    /// Whether it can answer `options` at all (it holds one of the allowed credentials).
    pub fn holds_one_of(&self, options: &Value) -> bool {
        let options: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
        options
            .public_key
            .allow_credentials
            .iter()
            .any(|allowed| self.held.iter().any(|(id, _)| id[..] == allowed.id[..]))
    }
}
