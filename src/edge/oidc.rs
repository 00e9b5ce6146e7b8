//! The edge as an OpenID Connect relying party, for tunnels behind sign-in:
//! the provider's discovery document and keys, fetched through the edge's
//! egress (the issuer is a tenant's URL, so it goes only where a gateway
//! upstream could); the authorization code flow with PKCE; the ID token's
//! checks (signature, issuer, audience, expiry, nonce); and the sealed
//! cookies that carry a sign-in in progress and a session, each bound to
//! the host it was made for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use beamd_protocol::SignInRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use ring::aead::{self, Aad, LessSafeKey, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::SignInRule;
use crate::egress::Egress;

/// How long one exchange with the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The most the edge reads of a provider's answer.
const MAX_ANSWER: usize = 1 << 20;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why an exchange with the provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(String);

/// A tunnel's provider, discovered when the tunnel opened.
pub struct Provider {
    /// Who is let in.
    pub rule: SignInRule,
    client: Client,
    end_session: Option<String>,
    egress: Arc<Egress>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// A sign-in under way: kept, sealed, in the browser until it comes back.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// Where the person was going (a path on the tunnel's host).
    pub back: String,
}

/// Who signed in, as the provider said.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's subject.
    pub sub: String,
    /// Their email, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider verified it.
    pub verified: Option<bool>,
    /// The issuer and client it was signed in through.
    pub issuer: String,
    /// The client id.
    pub client: String,
    /// When the session ends (seconds since the epoch).
    pub until: u64,
}

impl Identity {
    /// How the inspector names them: their email, else their subject.
    pub fn name(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.sub)
    }
}

impl Provider {
    /// Reads the provider's discovery document (and its keys) through the
    /// edge's egress; fails with why, for the agent to hear.
    pub async fn discover(
        request: &SignInRequest,
        rule: SignInRule,
        egress: Arc<Egress>,
    ) -> Result<Self, String> {
        let issuer = IssuerUrl::new(request.issuer.clone())
            .map_err(|e| format!("the OpenID issuer {:?}: {e}", request.issuer))?;
        let http = Http(&egress);
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                format!(
                    "the OpenID provider {} could not be discovered: {}",
                    request.issuer,
                    error_chain(&e)
                )
            })?;
        let end_session = (metadata.additional_metadata().end_session_endpoint)
            .as_ref()
            .map(|u| u.url().to_string());
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(request.client_id.clone()),
            Some(ClientSecret::new(request.client_secret.clone())),
        );
        Ok(Self {
            rule,
            client,
            end_session,
            egress,
        })
    }

    /// Where to send a person to sign in, coming back to `redirect` and
    /// then to `back`; and what to keep until they do.
    pub fn start(&self, redirect: &str, back: String) -> Result<(String, Pending), String> {
        let redirect = RedirectUrl::new(redirect.to_string()).map_err(|e| e.to_string())?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .set_redirect_uri(std::borrow::Cow::Owned(redirect))
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            back,
        };
        Ok((url.to_string(), pending))
    }

    /// Finishes a sign-in: `state` must be the pending one's; the code is
    /// exchanged (with the PKCE verifier and the client's secret), the ID
    /// token checked, and the email read from it or, if it has none, from
    /// the provider's userinfo.
    pub async fn finish(
        &self,
        redirect: &str,
        code: &str,
        state: &str,
        pending: Pending,
        until: u64,
    ) -> Result<Identity, String> {
        // The state is no secret (it rode in the URL); what it guards is
        // that this browser started this sign-in: its sealed cookie says so.
        if state != pending.state {
            return Err("the sign-in's state does not match the one this browser started".into());
        }
        let redirect = RedirectUrl::new(redirect.to_string()).map_err(|e| e.to_string())?;
        let http = Http(&self.egress);
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| format!("the provider has no token endpoint: {e}"))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .set_redirect_uri(std::borrow::Cow::Owned(redirect))
            .request_async(&http)
            .await
            .map_err(|e| format!("the provider refused the code: {}", error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or("the provider answered without an ID token")?;
        let verifier = self.client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| format!("the ID token is not valid: {e}"))?;
        if let Some(expected) = claims.access_token_hash() {
            let signing = id_token.signing_alg().map_err(|e| e.to_string())?;
            let key = id_token.signing_key(&verifier).map_err(|e| e.to_string())?;
            let actual = AccessTokenHash::from_token(token.access_token(), signing, key)
                .map_err(|e| e.to_string())?;
            if actual != *expected {
                return Err("the ID token's at_hash does not match its access token".into());
            }
        }
        let sub = claims.subject().to_string();
        let (mut email, mut verified) = (
            claims.email().map(|e| e.to_string()),
            claims.email_verified(),
        );
        if email.is_none() {
            if let Ok(request) = self
                .client
                .user_info(token.access_token().clone(), Some(claims.subject().clone()))
            {
                let info: openidconnect::core::CoreUserInfoClaims = request
                    .request_async(&http)
                    .await
                    .map_err(|e| format!("the provider's userinfo: {}", error_chain(&e)))?;
                email = info.email().map(|e| e.to_string());
                verified = info.email_verified();
            }
        }
        Ok(Identity {
            sub,
            email,
            verified,
            issuer: self.rule.issuer.clone(),
            client: self.rule.client_id.clone(),
            until,
        })
    }

    /// Whether a session was made through this provider and client.
    pub fn issued(&self, identity: &Identity) -> bool {
        identity.issuer == self.rule.issuer && identity.client == self.rule.client_id
    }

    /// The provider's end-session URL (RP-initiated logout), if it has one.
    pub fn end_session(&self) -> Option<String> {
        let url = self.end_session.as_ref()?;
        let mut url = openidconnect::url::Url::parse(url).ok()?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.rule.client_id);
        Some(url.to_string())
    }
}

/// An error and its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The HTTP client the provider is spoken to with (a named type with a
/// boxed future: the tunnel's session task must stay `Send`).
struct Http<'a>(&'a Egress);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http<'_> {
    type Error = ProviderError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, ProviderError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(self.0, request))
    }
}

/// One request to the provider: through the egress policy, over TLS for
/// `https`, its answer read up to `MAX_ANSWER`.
async fn send(
    egress: &Egress,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, ProviderError> {
    tokio::time::timeout(PROVIDER_TIMEOUT, exchange(egress, request))
        .await
        .map_err(|_| ProviderError(format!("no answer within {PROVIDER_TIMEOUT:?}")))?
}

async fn exchange(
    egress: &Egress,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, ProviderError> {
    let fail = |e: &dyn std::fmt::Display| ProviderError(e.to_string());
    let uri = request.uri().clone();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(ProviderError(format!("{uri} is not an http(s) URL"))),
    };
    let host = uri
        .host()
        .ok_or_else(|| ProviderError(format!("{uri} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = egress.connect(&host, port).await.map_err(|e| fail(&e))?;
    let (mut parts, body) = request.into_parts();
    parts.uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e| fail(&e))?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(&host);
    parts.headers.insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_str(authority).map_err(|e| fail(&e))?,
    );
    let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let answer = if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| fail(&e))?;
        let tls = tokio_rustls::TlsConnector::from(tls_client())
            .connect(name, stream)
            .await
            .map_err(|e| fail(&e))?;
        send_on(TokioIo::new(tls), request).await?
    } else {
        send_on(TokioIo::new(stream), request).await?
    };
    let (parts, body) = answer.into_parts();
    let bytes = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| ProviderError(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(hyper::Response::from_parts(parts, bytes.to_vec()))
}

async fn send_on<I>(
    io: I,
    request: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, ProviderError>
where
    I: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let fail = |e: &dyn std::fmt::Display| ProviderError(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| fail(&e))?;
    tokio::spawn(conn);
    sender.send_request(request).await.map_err(|e| fail(&e))
}

/// TLS to providers: the web's roots (webpki-roots), as a browser would.
fn tls_client() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Seals what the edge keeps in a browser (a sign-in under way, a session)
/// with ChaCha20-Poly1305: the browser can neither read nor change it, and
/// a cookie made for one host or purpose does not open for another.
pub struct CookieSeal {
    key: LessSafeKey,
}

impl std::fmt::Debug for CookieSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSeal(MASKED)")
    }
}

/// Where the key is kept in the data dir.
const KEY_FILE: &str = "sign-in.key";

impl CookieSeal {
    /// A key of its own (tests, simulations: nothing outlives the run).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the system's random source");
        Self::from_bytes(&key)
    }

    fn from_bytes(key: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// The edge's key, `<data dir>/sign-in.key` (made on first use, 0600):
    /// sessions outlive a restart of the edge.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{} is not a 32-byte key; remove it to make a new one (everyone signs in again)",
                        path.display()
                    ))
                })?;
                Ok(Self::from_bytes(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(std::io::Error::other)?;
                crate::data_dir::write_private(&path, key)?;
                Ok(Self::from_bytes(&key))
            }
            Err(e) => Err(e),
        }
    }

    /// The key in `file` (`--sign-in-key-file`, shared by a cluster's
    /// edges): exactly 32 bytes, readable by its owner only.
    pub fn from_file(file: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::os::unix::fs::PermissionsExt;
        let bytes = std::fs::read(file)
            .with_context(|| format!("cannot read --sign-in-key-file {}", file.display()))?;
        let mode = std::fs::metadata(file)?.permissions().mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "--sign-in-key-file {} can be read by others (mode {:o}): run chmod 600 on it",
            file.display(),
            mode & 0o777
        );
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            anyhow::anyhow!(
                "--sign-in-key-file {} holds {} bytes, not 32: make one with head -c 32 /dev/urandom",
                file.display(),
                b.len()
            )
        })?;
        Ok(Self::from_bytes(&key))
    }

    /// `value` sealed for `purpose` on `host`, as cookie-safe text; fails
    /// only when the system gives no random nonce.
    pub fn seal<T: Serialize>(
        &self,
        purpose: &str,
        host: &str,
        value: &T,
    ) -> Result<String, getrandom::Error> {
        use base64::Engine;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        let mut data = serde_json::to_vec(value).expect("plain data serializes");
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(purpose, host)),
                &mut data,
            )
            .expect("a cookie is far below the cipher's limit");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// What `seal` sealed for `purpose` on `host`; `None` for anything else
    /// (changed, made for another host or purpose, or by another key).
    pub fn open<T: DeserializeOwned>(&self, purpose: &str, host: &str, text: &str) -> Option<T> {
        use base64::Engine;
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(purpose, host)), &mut sealed)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

fn aad(purpose: &str, host: &str) -> Vec<u8> {
    format!("beamd {purpose}\n{host}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cookie_opens_only_unchanged_for_its_host_and_purpose() {
        let seal = CookieSeal::random();
        let text = seal
            .seal("session", "web.example", &"alice".to_string())
            .unwrap();
        assert_eq!(
            seal.open::<String>("session", "web.example", &text)
                .as_deref(),
            Some("alice")
        );
        assert!(seal
            .open::<String>("session", "other.example", &text)
            .is_none());
        assert!(seal
            .open::<String>("sign-in", "web.example", &text)
            .is_none());
        assert!(CookieSeal::random()
            .open::<String>("session", "web.example", &text)
            .is_none());
        let mut tampered = text.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(seal
            .open::<String>("session", "web.example", &tampered)
            .is_none());
        assert!(seal.open::<String>("session", "web.example", "").is_none());
    }
}
