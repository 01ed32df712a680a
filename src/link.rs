//! Building registration links from a configured base URL or a v2 `urlTemplate`.
//!
//! Links are built only from configuration, never from request data such as a `Host` header.
//! Every value is percent-encoded, and the origin of every rendered link must be in the
//! configured allow-list, so neither a hostile template nor a hostile id can point a user's
//! secret at a foreign host.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::{Host, Url};

use crate::ids::{CodeId, OrgId, UserId};
use crate::secret::Secret;

/// Longest accepted `urlTemplate`, in characters (the proto limit).
pub const MAX_TEMPLATE_LEN: usize = 200;

/// The path ZITADEL's login UI serves passwordless registration on, below the base URL.
pub const DEFAULT_LINK_PATH: &str = "/ui/login/login/passwordless/init";

// Everything but RFC 3986 unreserved characters is encoded.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a base URL, an origin or a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Not an absolute URL.
    #[error("not an absolute URL")]
    NotAbsolute,
    /// Scheme other than https (or http on a loopback host).
    #[error("links must use https (http only on a loopback host)")]
    InsecureScheme,
    /// A base URL carried credentials, a query or a fragment.
    #[error("a base URL may not carry credentials, a query or a fragment")]
    BaseUrlExtras,
    /// Template longer than [`MAX_TEMPLATE_LEN`].
    #[error("the url template is longer than {MAX_TEMPLATE_LEN} characters")]
    TemplateTooLong,
    /// Template with an empty body.
    #[error("the url template is empty")]
    TemplateEmpty,
    /// Unbalanced `{{` / `}}` or a control/whitespace character.
    #[error("the url template is malformed")]
    TemplateMalformed,
    /// A placeholder other than `.UserID`, `.OrgID`, `.CodeID`, `.Code`.
    #[error("the url template uses an unknown placeholder")]
    UnknownPlaceholder,
    /// The rendered link's origin is not allowed.
    #[error("the link's origin is not in the allow-list")]
    ForeignOrigin,
    /// `{{.Code}}` in the host part: the secret would leak into DNS lookups and TLS handshakes.
    #[error("the url template puts the code into the host")]
    SecretInHost,
}

/// A validated base URL: absolute, https unless the host is loopback, no credentials, query or
/// fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: Url,
}

impl BaseUrl {
    /// Parses and validates a base URL such as `https://id.example.com`.
    ///
    /// # Errors
    /// [`LinkError`] when the URL is relative, insecure, or carries credentials/query/fragment.
    pub fn parse(raw: &str) -> Result<Self, LinkError> {
        let url = parse_secure(raw)?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(LinkError::BaseUrlExtras);
        }
        Ok(Self { url })
    }

    /// The origin (`scheme://host[:port]`).
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The URL as text, without a trailing slash.
    pub fn as_str(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_secure(raw: &str) -> Result<Url, LinkError> {
    let url = Url::parse(raw).map_err(|_| LinkError::NotAbsolute)?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(match url.scheme() {
            "http" | "https" => LinkError::NotAbsolute,
            _ => LinkError::InsecureScheme,
        });
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(LinkError::InsecureScheme),
    }
}

/// Where links may point: the base URL for default links and the origin allow-list for
/// templates.
///
/// ```
/// use passkey_links::ids::{CodeId, OrgId, UserId};
/// use passkey_links::{BaseUrl, LinkConfig, LinkValues, Secret, UrlTemplate};
///
/// let links = LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap())
///     .allow_origin("https://app.example.com")
///     .unwrap();
/// let (user, org, code) = (UserId::new("u1").unwrap(), OrgId::new("o1").unwrap(), CodeId::new("c1").unwrap());
/// let secret = Secret::presented("a+b");
/// let values = LinkValues { user_id: &user, org_id: &org, code_id: &code, secret: &secret };
/// assert_eq!(
///     links.render_default(&values).expose(),
///     "https://id.example.com/ui/login/login/passwordless/init?userID=u1&orgID=o1&codeID=c1&code=a%2Bb"
/// );
/// let template = UrlTemplate::parse("https://app.example.com/set?c={{.Code}}&id={{.CodeID}}").unwrap();
/// assert_eq!(links.render_template(&template, &values).unwrap().expose(), "https://app.example.com/set?c=a%2Bb&id=c1");
/// let hostile = UrlTemplate::parse("https://evil.example/{{.Code}}").unwrap();
/// assert!(links.render_template(&hostile, &values).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    base: BaseUrl,
    allowed_origins: Vec<String>,
}

impl LinkConfig {
    /// Links built on `base`; templates may point at `base`'s origin only.
    pub fn new(base: BaseUrl) -> Self {
        let allowed_origins = vec![base.origin()];
        Self {
            base,
            allowed_origins,
        }
    }

    /// Also allow templates to point at `origin` (e.g. `https://app.example.com`).
    ///
    /// # Errors
    /// [`LinkError`] when the origin is not an absolute, secure URL.
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, LinkError> {
        let origin = parse_secure(origin)?.origin().ascii_serialization();
        if !self.allowed_origins.contains(&origin) {
            self.allowed_origins.push(origin);
        }
        Ok(self)
    }

    /// The base URL.
    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// The allowed origins.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Renders the default ZITADEL-style link:
    /// `{base}/ui/login/login/passwordless/init?userID=…&orgID=…&codeID=…&code=…`.
    pub fn render_default(&self, values: &LinkValues<'_>) -> Link {
        Link(format!(
            "{}{}?userID={}&orgID={}&codeID={}&code={}",
            self.base.as_str(),
            DEFAULT_LINK_PATH,
            encode(values.user_id.as_str()),
            encode(values.org_id.as_str()),
            encode(values.code_id.as_str()),
            encode(values.secret.expose()),
        ))
    }

    /// Renders a v2 template and checks that the result is a secure URL in the allow-list.
    ///
    /// # Errors
    /// [`LinkError`] when the rendered link is not a secure absolute URL or its origin is not
    /// allowed.
    pub fn render_template(
        &self,
        template: &UrlTemplate,
        values: &LinkValues<'_>,
    ) -> Result<Link, LinkError> {
        let out = template.render(
            values.user_id,
            values.org_id,
            values.code_id,
            values.secret.expose(),
        );
        self.check_rendered(&out)?;
        Ok(Link(out))
    }

    /// Checks, before any secret exists, that `template` renders for these ids to a secure URL
    /// in the allow-list. The secret cannot change the outcome: templates never put it into
    /// the host ([`LinkError::SecretInHost`]), and percent-encoded it changes nothing else.
    ///
    /// # Errors
    /// As [`LinkConfig::render_template`].
    pub fn check_template(
        &self,
        template: &UrlTemplate,
        user_id: &UserId,
        org_id: &OrgId,
        code_id: &CodeId,
    ) -> Result<(), LinkError> {
        self.check_rendered(&template.render(user_id, org_id, code_id, ""))
    }

    fn check_rendered(&self, rendered: &str) -> Result<(), LinkError> {
        let url = parse_secure(rendered)?;
        let origin = url.origin().ascii_serialization();
        if !self.allowed_origins.contains(&origin) {
            return Err(LinkError::ForeignOrigin);
        }
        Ok(())
    }

    /// Renders `template` when given, else the default link.
    ///
    /// # Errors
    /// As [`LinkConfig::render_template`].
    pub fn render(
        &self,
        template: Option<&UrlTemplate>,
        values: &LinkValues<'_>,
    ) -> Result<Link, LinkError> {
        match template {
            Some(template) => self.render_template(template, values),
            None => Ok(self.render_default(values)),
        }
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, VALUE).to_string()
}

/// The values a link carries.
#[derive(Debug, Clone, Copy)]
pub struct LinkValues<'a> {
    /// The user the link registers a passkey for.
    pub user_id: &'a UserId,
    /// The user's organization.
    pub org_id: &'a OrgId,
    /// The code id.
    pub code_id: &'a CodeId,
    /// The secret.
    pub secret: &'a Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    UserId,
    OrgId,
    CodeId,
    Code,
}

/// A parsed v2 `urlTemplate` using `{{.UserID}}`, `{{.OrgID}}`, `{{.CodeID}}`, `{{.Code}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    raw: String,
    parts: Vec<Part>,
}

impl UrlTemplate {
    /// Parses a template: at most 200 characters, known placeholders only, balanced braces, no
    /// whitespace or control characters.
    ///
    /// # Errors
    /// [`LinkError::TemplateTooLong`], [`LinkError::TemplateEmpty`],
    /// [`LinkError::TemplateMalformed`], [`LinkError::UnknownPlaceholder`] or
    /// [`LinkError::SecretInHost`].
    pub fn parse(raw: &str) -> Result<Self, LinkError> {
        if raw.is_empty() {
            return Err(LinkError::TemplateEmpty);
        }
        if raw.chars().count() > MAX_TEMPLATE_LEN {
            return Err(LinkError::TemplateTooLong);
        }
        let mut parts = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            let (text, after) = match rest.find("{{") {
                Some(open) => (&rest[..open], Some(&rest[open + 2..])),
                None => (rest, None),
            };
            if text.contains("}}") || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(LinkError::TemplateMalformed);
            }
            if !text.is_empty() {
                parts.push(Part::Text(text.to_owned()));
            }
            let Some(after) = after else { break };
            let close = after.find("}}").ok_or(LinkError::TemplateMalformed)?;
            let inner = after[..close].trim_matches(' ');
            if inner.contains("{{") {
                return Err(LinkError::TemplateMalformed);
            }
            parts.push(match inner {
                ".UserID" => Part::UserId,
                ".OrgID" => Part::OrgId,
                ".CodeID" => Part::CodeId,
                ".Code" => Part::Code,
                _ => return Err(LinkError::UnknownPlaceholder),
            });
            rest = &after[close + 2..];
        }
        if code_in_authority(&parts) {
            return Err(LinkError::SecretInHost);
        }
        Ok(Self {
            raw: raw.to_owned(),
            parts,
        })
    }

    fn render(&self, user_id: &UserId, org_id: &OrgId, code_id: &CodeId, secret: &str) -> String {
        let mut out = String::with_capacity(self.raw.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::UserId => out.extend(utf8_percent_encode(user_id.as_str(), VALUE)),
                Part::OrgId => out.extend(utf8_percent_encode(org_id.as_str(), VALUE)),
                Part::CodeId => out.extend(utf8_percent_encode(code_id.as_str(), VALUE)),
                Part::Code => out.extend(utf8_percent_encode(secret, VALUE)),
            }
        }
        out
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// Whether `{{.Code}}` sits in the authority (between `://` and the first `/`, `?` or `#`).
/// Placeholders become marker characters that text cannot hold (control characters are refused
/// at parse time), so the scan sees the template's shape exactly.
fn code_in_authority(parts: &[Part]) -> bool {
    const CODE: char = '\u{1}';
    const OTHER: char = '\u{2}';
    let shape: String = parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.clone(),
            Part::Code => CODE.to_string(),
            _ => OTHER.to_string(),
        })
        .collect();
    let Some(start) = shape.find("://") else {
        return false;
    };
    let authority = &shape[start + 3..];
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    authority[..end].contains(CODE)
}

/// A rendered link. It carries the secret, so `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Link(String);

impl Link {
    /// The link text; every call site is a place where the secret leaves the process.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The link text, consumed.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Link(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(
        user: &'a UserId,
        org: &'a OrgId,
        code: &'a CodeId,
        secret: &'a Secret,
    ) -> LinkValues<'a> {
        LinkValues {
            user_id: user,
            org_id: org,
            code_id: code,
            secret,
        }
    }

    #[test]
    fn default_link_has_zitadel_shape_and_encodes_values() {
        let config = LinkConfig::new(BaseUrl::parse("https://id.example.com/").unwrap());
        let (u, o, c) = (
            UserId::new("u&1").unwrap(),
            OrgId::new("o1").unwrap(),
            CodeId::new("c1").unwrap(),
        );
        let secret = Secret::presented("a+b/c=");
        let link = config.render_default(&values(&u, &o, &c, &secret));
        assert_eq!(
            link.expose(),
            "https://id.example.com/ui/login/login/passwordless/init?userID=u%261&orgID=o1&codeID=c1&code=a%2Bb%2Fc%3D"
        );
        assert_eq!(format!("{link:?}"), "Link(<redacted>)");
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(
            BaseUrl::parse("http://id.example.com"),
            Err(LinkError::InsecureScheme)
        );
        assert!(BaseUrl::parse("http://localhost:8080").is_ok());
        assert!(BaseUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(BaseUrl::parse("http://[::1]:8080").is_ok());
        assert_eq!(BaseUrl::parse("/relative"), Err(LinkError::NotAbsolute));
        assert_eq!(
            BaseUrl::parse("https://a:b@id.example.com"),
            Err(LinkError::BaseUrlExtras)
        );
    }

    #[test]
    fn templates_are_validated() {
        assert_eq!(
            UrlTemplate::parse("https://x/{{.Nope}}"),
            Err(LinkError::UnknownPlaceholder)
        );
        assert_eq!(
            UrlTemplate::parse("https://x/{{.Code"),
            Err(LinkError::TemplateMalformed)
        );
        assert_eq!(
            UrlTemplate::parse("https://x/}}"),
            Err(LinkError::TemplateMalformed)
        );
        assert_eq!(
            UrlTemplate::parse(&format!("https://x/{}", "a".repeat(200))),
            Err(LinkError::TemplateTooLong)
        );
        assert!(UrlTemplate::parse("https://x/{{ .Code }}").is_ok());
        for in_host in [
            "https://{{.Code}}.example.com/",
            "https://x{{.Code}}/",
            "https://user:{{.Code}}@example.com/",
            "https://example.com:{{.Code}}",
        ] {
            assert_eq!(
                UrlTemplate::parse(in_host),
                Err(LinkError::SecretInHost),
                "{in_host}"
            );
        }
        assert!(UrlTemplate::parse("https://{{.OrgID}}.example.com/?c={{.Code}}").is_ok());
    }

    #[test]
    fn templates_render_only_to_allowed_origins() {
        let config = LinkConfig::new(BaseUrl::parse("https://id.example.com").unwrap())
            .allow_origin("https://app.example.com")
            .unwrap();
        let (u, o, c) = (
            UserId::new("u1").unwrap(),
            OrgId::new("o1").unwrap(),
            CodeId::new("c1").unwrap(),
        );
        let secret = Secret::presented("s3cr3t");
        let v = values(&u, &o, &c, &secret);
        let ok = UrlTemplate::parse(
            "https://app.example.com/passkey/set?userId={{.UserID}}&codeId={{.CodeID}}&code={{.Code}}",
        )
        .unwrap();
        assert_eq!(
            config.render_template(&ok, &v).unwrap().expose(),
            "https://app.example.com/passkey/set?userId=u1&codeId=c1&code=s3cr3t"
        );
        for hostile in [
            "https://evil.example/{{.Code}}",
            "https://app.example.com@evil.example/{{.Code}}",
            "javascript:alert({{.Code}})",
            "http://app.example.com/{{.Code}}",
        ] {
            let template = UrlTemplate::parse(hostile).unwrap();
            assert!(config.render_template(&template, &v).is_err(), "{hostile}");
        }
    }
}
