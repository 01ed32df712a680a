//! Connecting: driver configuration, TLS, pool settings, and the session each pooled
//! connection starts with.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::store::StoreError;

/// Parses a libpq key/value string (`host=/tmp user=postgres sslmode=require`) or a URL
/// (`postgres://user@host/db?sslmode=require`).
///
/// `sslmode=verify-full` and `sslmode=verify-ca` are accepted (the driver knows neither) and
/// mean TLS required: with [`Tls::Rustls`] the store always verifies the server's certificate
/// chain against the configured roots *and* its name — verify-full's meaning, and stricter than
/// libpq's verify-ca, which skips the name.
///
/// # Errors
/// [`StoreError::Internal`] for a malformed configuration (the message never repeats a
/// password).
pub fn parse_config(config: &str) -> Result<tokio_postgres::Config, StoreError> {
    let config = config
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require");
    tokio_postgres::Config::from_str(&config)
        .map_err(|err| StoreError::Internal(format!("bad database configuration: {err}")))
}

/// How the store's connections are secured.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Tls {
    /// Plain connections: `sslmode=require` fails as misconfigured.
    #[default]
    None,
    /// TLS through rustls with this client configuration (feature `postgres-rustls`).
    #[cfg(feature = "postgres-rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
    Rustls(std::sync::Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("Tls::None"),
            #[cfg(feature = "postgres-rustls")]
            Self::Rustls(_) => f.write_str("Tls::Rustls(..)"),
        }
    }
}

#[cfg(feature = "postgres-rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-rustls")))]
impl Tls {
    /// TLS through rustls (ring), trusting only the certificate authorities of `pem` (the
    /// server's CA bundle, e.g. a cloud provider's), verifying the server's name.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] when `pem` holds no usable certificate.
    pub fn rustls_trusting_pem(pem: &[u8]) -> Result<Self, StoreError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let bad = |why: String| StoreError::Misconfigured(format!("TLS roots: {why}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|err| bad(format!("the CA file is not valid PEM ({err})")))?;
            roots.add(cert).map_err(|err| {
                bad(format!(
                    "the CA file holds a certificate that is not a valid X.509 CA certificate \
                     ({err})"
                ))
            })?;
        }
        if roots.is_empty() {
            return Err(bad(
                "the CA file holds no certificate (is it a PEM bundle?)".into(),
            ));
        }
        // An explicit provider: an application that also compiles another rustls provider
        // must not make the default ambiguous.
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| bad(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::Rustls(std::sync::Arc::new(config)))
    }
}

/// Pool settings for [`PostgresStore::connect_with`](super::PostgresStore::connect_with).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Most connections open at once (default 16).
    pub max_connections: usize,
    /// Bound of every call: connecting, waiting for a pooled connection, each statement and
    /// each call as a whole (default [`DEFAULT_DEADLINE`]).
    pub deadline: Duration,
    /// How connections are secured (default none).
    pub tls: Tls,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            deadline: DEFAULT_DEADLINE,
            tls: Tls::None,
        }
    }
}

impl ConnectOptions {
    /// Sets the pool size.
    pub fn max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets how connections are secured.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// The deadpool pool [`PostgresStore::connect_with`](super::PostgresStore::connect_with)
    /// would build for `config`, for an application that keeps the pool itself (and hands it
    /// to [`PostgresStore::new`](super::PostgresStore::new)): `sslmode` honoured through these
    /// options' TLS, every wait bounded by their deadline (`statement_timeout` on the server
    /// too), the connection used last handed out first. No planner settings: the application
    /// may run its own queries on it.
    ///
    /// # Errors
    /// [`StoreError::Internal`] for an unusable pool configuration.
    pub fn build_pool(self, config: tokio_postgres::Config) -> Result<Pool, StoreError> {
        build_pool(config, self)
    }
}

pub use crate::store::sql::DEFAULT_DEADLINE;

/// Builds the store's pool for `config`: its statement timeout, `sslmode` honoured through
/// `options.tls`, every wait bounded by `options.deadline`.
pub(super) fn build_pool(
    mut config: tokio_postgres::Config,
    options: ConnectOptions,
) -> Result<Pool, StoreError> {
    let deadline = options.deadline;
    // The one session setting: the deadline, on the server too. The planner settings the hot
    // statements need travel with them (migration 9), so a pool the application builds with
    // default settings serves the store as well as this one.
    let ours = format!("-c statement_timeout={}", deadline.as_millis());
    let server_options = match config.get_options() {
        Some(existing) => format!("{existing} {ours}"),
        None => ours,
    };
    config.options(&server_options);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(deadline);
    }
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match options.tls {
        Tls::None => Manager::from_config(config, NoTls, recycling),
        #[cfg(feature = "postgres-rustls")]
        Tls::Rustls(client) => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new((*client).clone()),
            recycling,
        ),
    };
    let pool = Pool::builder(manager)
        .max_size(options.max_connections.max(1))
        // The connection used last, whose server process is still hot in the CPU's
        // caches: first in, first out cycles every statement through every connection the
        // pool ever opened (at 16 tasks on a pool once grown to 64, issuance ran at 0.6
        // times the rate it had before the pool grew).
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(deadline))
        .create_timeout(Some(deadline))
        .recycle_timeout(Some(deadline))
        .build()
        .map_err(|err| StoreError::Internal(err.to_string()))?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::{Host, TargetSessionAttrs};

    /// A CA file that is not PEM, holds no certificate, or holds a block that is no
    /// certificate is refused as a configuration fault saying which.
    #[cfg(feature = "postgres-rustls")]
    #[test]
    fn a_bad_ca_file_says_what_is_wrong_with_it() {
        let cases: [(&[u8], &str); 2] = [
            (b"", "holds no certificate"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a valid X.509 CA certificate",
            ),
        ];
        for (pem, says) in cases {
            match Tls::rustls_trusting_pem(pem) {
                Err(StoreError::Misconfigured(message)) => {
                    assert!(message.contains(says), "{message}");
                    assert!(message.starts_with("TLS roots: the CA file"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A pool built for the application keeps the options' size.
    #[test]
    fn an_application_builds_the_stores_pool() {
        let config = parse_config("host=/tmp user=app dbname=ids").unwrap();
        let pool = ConnectOptions::default()
            .max_connections(7)
            .build_pool(config)
            .unwrap();
        assert_eq!(pool.status().max_size, 7);
    }

    /// libpq's verifying modes are accepted in both forms, as TLS required.
    #[test]
    fn verifying_ssl_modes_mean_tls_required() {
        use tokio_postgres::config::SslMode;
        for mode in ["verify-full", "verify-ca"] {
            for text in [
                format!("host=db.example.com user=app sslmode={mode}"),
                format!("postgres://app@db.example.com/ids?sslmode={mode}"),
            ] {
                let config = parse_config(&text).unwrap();
                assert_eq!(config.get_ssl_mode(), SslMode::Require, "{text}");
            }
        }
        assert!(parse_config("host=db sslmode=sometimes").is_err());
    }

    /// Both forms of a multi-host connection string that asks for the primary parse to every
    /// host, in order, and the read-write requirement.
    #[test]
    fn multi_host_strings_ask_for_the_primary_in_both_forms() {
        for text in [
            "host=pg-a,pg-b port=5432,5433 user=app dbname=ids target_session_attrs=read-write",
            "postgres://app@pg-a:5432,pg-b:5433/ids?target_session_attrs=read-write",
        ] {
            let config = parse_config(text).unwrap();
            let hosts: Vec<_> = config
                .get_hosts()
                .iter()
                .map(|host| match host {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            assert_eq!(hosts, ["pg-a", "pg-b"], "{text}");
            assert_eq!(config.get_ports(), [5432, 5433], "{text}");
            assert_eq!(
                config.get_target_session_attrs(),
                TargetSessionAttrs::ReadWrite,
                "{text}"
            );
        }
    }
}
