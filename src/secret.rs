//! Link secrets: generation, digests and constant-time comparison.
//!
//! The plaintext secret exists only in the value handed back to the caller or to the notifier.
//! Events store a SHA-256 [`SecretDigest`]. [`Secret`] has a redacted `Debug`, no `Display` and no
//! `Serialize`, so it cannot reach a log line, an error or a stored event by accident.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The least entropy a secret configuration may have, in bits.
pub const MIN_SECRET_BITS: f64 = 112.0;
/// The longest secret a configuration may ask for.
pub const MAX_SECRET_LEN: usize = 256;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
// ZITADEL's symbol set, in its order.
const SYMBOLS: &[u8] = b"~!@#$^&*()_+`-={}|[]:<>?,./";

/// A secret configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretConfigError {
    /// No alphabet class is enabled.
    #[error("the secret alphabet is empty")]
    EmptyAlphabet,
    /// Longer than [`MAX_SECRET_LEN`].
    #[error("secrets longer than {MAX_SECRET_LEN} characters are not supported")]
    TooLong,
    /// Fewer than [`MIN_SECRET_BITS`] bits of entropy.
    #[error("the secret has {bits:.1} bits of entropy, at least 112 are required")]
    TooWeak {
        /// The configuration's entropy.
        bits: f64,
    },
}

/// Length and alphabet classes of generated secrets (as ZITADEL's secret generator).
///
/// ```
/// use passkey_links::{SecretConfig, SecretConfigError};
///
/// // ZITADEL's default of 12 alphanumerics (~71 bits) is refused; 20 (~119 bits) is enough.
/// assert!(matches!(SecretConfig::new(12, true, true, true, false), Err(SecretConfigError::TooWeak { .. })));
/// let config = SecretConfig::new(20, true, true, true, false).unwrap();
/// let secret = config.generate(&mut rand::rng());
/// assert_eq!(secret.expose().len(), 20);
/// assert!(secret.matches(&secret.digest()));
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretConfig {
    length: usize,
    lower: bool,
    upper: bool,
    digits: bool,
    symbols: bool,
}

impl Default for SecretConfig {
    /// 24 alphanumeric characters: about 143 bits.
    fn default() -> Self {
        Self {
            length: 24,
            lower: true,
            upper: true,
            digits: true,
            symbols: false,
        }
    }
}

impl SecretConfig {
    /// A configuration of `length` characters over the enabled classes.
    ///
    /// # Errors
    /// [`SecretConfigError`] for an empty alphabet, a length above [`MAX_SECRET_LEN`] or fewer
    /// than [`MIN_SECRET_BITS`] bits of entropy.
    pub fn new(
        length: usize,
        lower: bool,
        upper: bool,
        digits: bool,
        symbols: bool,
    ) -> Result<Self, SecretConfigError> {
        let config = Self {
            length,
            lower,
            upper,
            digits,
            symbols,
        };
        if config.alphabet().is_empty() {
            return Err(SecretConfigError::EmptyAlphabet);
        }
        if length > MAX_SECRET_LEN {
            return Err(SecretConfigError::TooLong);
        }
        let bits = config.entropy_bits();
        if bits < MIN_SECRET_BITS {
            return Err(SecretConfigError::TooWeak { bits });
        }
        Ok(config)
    }

    /// The number of characters of a generated secret.
    pub fn length(&self) -> usize {
        self.length
    }

    /// The alphabet, classes concatenated in ZITADEL's order.
    pub fn alphabet(&self) -> Vec<u8> {
        let mut alphabet = Vec::with_capacity(89);
        for (enabled, class) in [
            (self.lower, LOWER),
            (self.upper, UPPER),
            (self.digits, DIGITS),
            (self.symbols, SYMBOLS),
        ] {
            if enabled {
                alphabet.extend_from_slice(class);
            }
        }
        alphabet
    }

    /// Entropy of one generated secret, in bits.
    pub fn entropy_bits(&self) -> f64 {
        let symbols = self.alphabet().len();
        if symbols == 0 {
            return 0.0;
        }
        self.length as f64 * (symbols as f64).log2()
    }

    /// Generates a secret: every character is an independent, uniform choice from the
    /// alphabet (rand's unbiased sampling, no modulo bias).
    pub fn generate(&self, rng: &mut impl RngCore) -> Secret {
        let alphabet = self.alphabet();
        let text: String = (0..self.length)
            .filter_map(|_| alphabet.choose(rng).map(|&b| char::from(b)))
            .collect();
        Secret(text)
    }
}

/// A plaintext link secret.
///
/// `Debug` prints `Secret(<redacted>)`; there is no `Display` and no `Serialize`. Read it with
/// [`Secret::expose`] only where it must leave the process (the link, the notifier).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret presented by a user (from a link or a request body).
    pub fn presented(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The plaintext. Every call site is a place where the secret leaves the process.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest that events store.
    pub fn digest(&self) -> SecretDigest {
        SecretDigest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// Whether this secret hashes to `digest`, compared in constant time.
    pub fn matches(&self, digest: &SecretDigest) -> bool {
        self.digest().ct_eq(digest)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.digest().ct_eq(&other.digest())
    }
}

impl Eq for Secret {}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// SHA-256 digest of a secret, stored in events as standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &SecretDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({})", STANDARD.encode(self.0))
    }
}

impl Serialize for SecretDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SecretDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a secret digest has 32 bytes"))?;
        Ok(Self(bytes))
    }
}

/// The key the delivery outbox derives emailed secrets from.
///
/// A secret is never stored, so a delivery worker that runs after the request returned cannot
/// take it from the request: the request and the worker both derive it from this key and the
/// code id (HMAC-SHA-256 seeding ChaCha20, drawn through the policy's alphabet). The store
/// holds only the secret's digest; forging a link takes this key. Keep it with the other
/// server secrets; every process that sends or delivers needs the same key.
///
/// `Debug` prints `DeliveryKey(<redacted>)`.
#[derive(Clone)]
pub struct DeliveryKey([u8; 32]);

impl DeliveryKey {
    /// A key from 32 random bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh key from `rng` (a CSPRNG).
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A key from its standard base64 form (32 bytes).
    ///
    /// # Errors
    /// [`DeliveryKeyError`] unless `text` is base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, DeliveryKeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| DeliveryKeyError)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| DeliveryKeyError)?;
        Ok(Self(bytes))
    }

    /// The secret of the code `code_id` under `config`: the same for every process with this
    /// key and configuration.
    pub fn derive(&self, config: &SecretConfig, code_id: &str) -> Secret {
        use hmac::Mac as _;
        use hmac::digest::KeyInit;
        use rand::SeedableRng as _;
        // HMAC zero-pads a key shorter than its block: keying with the padded block is keying
        // with the 32 bytes, without a length check that could fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new(&block.into());
        mac.update(b"passkey-links delivery secret v1\0");
        mac.update(code_id.as_bytes());
        let seed: [u8; 32] = mac.finalize().into_bytes().into();
        config.generate(&mut rand_chacha::ChaCha20Rng::from_seed(seed))
    }
}

impl DeliveryKey {
    /// HMAC-SHA-256 under this key of `purpose` and `parts`, each length-prefixed (so no two
    /// lists of parts authenticate alike).
    pub(crate) fn mac(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        use hmac::Mac as _;
        use hmac::digest::KeyInit;
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new(&block.into());
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeliveryKey(<redacted>)")
    }
}

/// The deployment's secret keys, the same in every instance: the current one (the first) derives
/// and seals what is new; each is found again by the id recorded with what it made, so a key can
/// rotate — add the new key in front, keep the old ones until what they made has expired.
///
/// What they key: the delivery outbox's secrets, the ids and secrets of commands retried under
/// an idempotency key (so any instance answers a retry the same), and the seal of login states.
/// `Debug` names the key ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, DeliveryKey)>,
    // Drawn by this process alone: what it keys, no other process reproduces.
    ephemeral: bool,
}

impl Keyring {
    /// A keyring whose current key is `key`, named `id` (1–32 ASCII letters, digits, `-`, `_`).
    ///
    /// # Errors
    /// [`DeliveryKeyError`] for an invalid id.
    pub fn new(id: &str, key: DeliveryKey) -> Result<Self, DeliveryKeyError> {
        Self::valid_id(id)?;
        Ok(Self {
            keys: vec![(id.to_owned(), key)],
            ephemeral: false,
        })
    }

    /// Adds an older key (still accepted for what it made, never used for anything new).
    ///
    /// # Errors
    /// [`DeliveryKeyError`] for an invalid or repeated id.
    pub fn with_previous(mut self, id: &str, key: DeliveryKey) -> Result<Self, DeliveryKeyError> {
        Self::valid_id(id)?;
        if self.get(id).is_some() {
            return Err(DeliveryKeyError);
        }
        self.keys.push((id.to_owned(), key));
        Ok(self)
    }

    /// A keyring of one random key, for a single process: what it seals or derives no other
    /// process can open or reproduce.
    pub fn ephemeral() -> Self {
        Self {
            keys: vec![(
                "ephemeral".to_owned(),
                DeliveryKey::generate(&mut rand::rng()),
            )],
            ephemeral: true,
        }
    }

    /// Whether this is an [`Keyring::ephemeral`] keyring (no deployment keys were configured).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    fn valid_id(id: &str) -> Result<(), DeliveryKeyError> {
        let ok = (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(()) } else { Err(DeliveryKeyError) }
    }

    /// The current key and its id.
    pub fn current(&self) -> (&str, &DeliveryKey) {
        let (id, key) = &self.keys[0];
        (id, key)
    }

    /// The key named `id`.
    pub fn get(&self, id: &str) -> Option<&DeliveryKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }

    /// Every key with its id, current first.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &DeliveryKey)> {
        self.keys.iter().map(|(id, key)| (id.as_str(), key))
    }

    /// `payload` sealed under the current key for `purpose`: `{key id}.{payload}.{mac}`, the
    /// payload and MAC in unpadded base64url. Authenticated, not encrypted.
    pub(crate) fn seal(&self, purpose: &str, payload: &[u8]) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (id, key) = self.current();
        let mac = key.mac(purpose, &[id.as_bytes(), payload]);
        format!(
            "{id}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The payload of a token [`Keyring::seal`] made for `purpose` under a key of this ring;
    /// `None` for anything else (in constant time over the MAC).
    pub(crate) fn open(&self, purpose: &str, token: &str) -> Option<Vec<u8>> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.splitn(3, '.');
        let (id, payload, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let key = self.get(id)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = key.mac(purpose, &[id.as_bytes(), &payload]);
        bool::from(expected.as_slice().ct_eq(&mac)).then_some(payload)
    }
}

impl From<DeliveryKey> for Keyring {
    /// A keyring of `key` alone, named `default`.
    fn from(key: DeliveryKey) -> Self {
        Self {
            keys: vec![("default".to_owned(), key)],
            ephemeral: false,
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A delivery key was not base64 of 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a key is the standard base64 form of 32 bytes, named by a unique id of 1-32 letters, digits, '-' or '_'"
)]
pub struct DeliveryKeyError;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_config_has_over_128_bits() {
        let bits = SecretConfig::default().entropy_bits();
        assert!(bits > 128.0, "{bits}");
    }

    #[test]
    fn weak_configs_are_rejected() {
        // ZITADEL's default (12 alphanumerics) is only ~71 bits.
        assert!(matches!(
            SecretConfig::new(12, true, true, true, false),
            Err(SecretConfigError::TooWeak { .. })
        ));
        assert_eq!(
            SecretConfig::new(30, false, false, false, false),
            Err(SecretConfigError::EmptyAlphabet)
        );
        // 34 decimal digits = 113 bits: just enough.
        assert!(SecretConfig::new(34, false, false, true, false).is_ok());
        assert!(SecretConfig::new(33, false, false, true, false).is_err());
    }

    #[test]
    fn generated_secrets_use_only_the_alphabet_and_every_symbol() {
        let config = SecretConfig::new(40, false, false, true, true).unwrap();
        let alphabet = config.alphabet();
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let secret = config.generate(&mut rng);
            assert_eq!(secret.expose().len(), 40);
            for b in secret.expose().bytes() {
                assert!(alphabet.contains(&b));
                seen.insert(b);
            }
        }
        // ZITADEL's modulo bug could never produce the last symbol; every symbol occurs here.
        assert_eq!(seen.len(), alphabet.len());
    }

    #[test]
    fn digest_matches_and_debug_is_redacted() {
        let secret = Secret::presented("hunter2hunter2");
        let digest = secret.digest();
        assert!(secret.matches(&digest));
        assert!(!Secret::presented("hunter2hunter3").matches(&digest));
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let json = serde_json::to_string(&digest).unwrap();
        let back: SecretDigest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, digest);
    }

    #[test]
    fn delivery_keys_derive_one_secret_per_code_and_key() {
        let config = SecretConfig::default();
        let key = DeliveryKey::new([7; 32]);
        let again = DeliveryKey::from_base64(&STANDARD.encode([7; 32])).unwrap();
        let a = key.derive(&config, "code-a");
        assert_eq!(a.expose(), again.derive(&config, "code-a").expose());
        assert_ne!(a.expose(), key.derive(&config, "code-b").expose());
        let other = DeliveryKey::new([8; 32]);
        assert_ne!(a.expose(), other.derive(&config, "code-a").expose());
        assert_eq!(
            a.expose().len(),
            config
                .generate(&mut StdRng::seed_from_u64(1))
                .expose()
                .len()
        );
        assert_eq!(format!("{key:?}"), "DeliveryKey(<redacted>)");
        assert!(DeliveryKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn a_sealed_token_opens_only_unchanged_under_a_key_of_the_ring() {
        let old = DeliveryKey::new([1; 32]);
        let new = DeliveryKey::new([2; 32]);
        let before = Keyring::new("k1", old.clone()).unwrap();
        let token = before.seal("purpose", b"payload");
        assert_eq!(
            before.open("purpose", &token).as_deref(),
            Some(&b"payload"[..])
        );
        assert_eq!(before.open("other purpose", &token), None);
        let rotated = Keyring::new("k2", new)
            .unwrap()
            .with_previous("k1", old)
            .unwrap();
        assert_eq!(
            rotated.open("purpose", &token).as_deref(),
            Some(&b"payload"[..])
        );
        assert!(rotated.seal("purpose", b"x").starts_with("k2."));
        let mut forged = token.clone();
        forged.replace_range(3..4, if &token[3..4] == "A" { "B" } else { "A" });
        assert_eq!(rotated.open("purpose", &forged), None);
        assert_eq!(Keyring::ephemeral().open("purpose", &token), None);
        assert!(!format!("{rotated:?}").contains("[2"), "{rotated:?}");
        assert!(Keyring::new("bad id", DeliveryKey::new([0; 32])).is_err());
    }
}
