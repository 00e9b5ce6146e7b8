//! Sign-in at the edge with OpenID Connect (#31), against a real provider
//! started by the test. So far: the provider and the scripted browser
//! themselves (the edge's side is not built yet).

use anyhow::{ensure, Result};

use crate::common::oidc::{Browser, OidcProvider};

#[test]
fn the_test_provider_signs_a_person_in_and_redirects_with_a_code() -> Result<()> {
    let callback = "http://web.localhost:1234/.beamd/oidc/callback";
    let provider = OidcProvider::start("beamd", "s3cret", callback)?;
    // PKCE S256 of the verifier in RFC 7636's example.
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = format!(
        "{}/auth?client_id=beamd&response_type=code&scope=openid%20email&redirect_uri={}&state=st4te&nonce=n0nce&code_challenge={challenge}&code_challenge_method=S256",
        provider.issuer,
        "http%3A%2F%2Fweb.localhost%3A1234%2F.beamd%2Foidc%2Fcallback",
    );
    let browser = Browser::new(&[])?;
    let back = browser.sign_in(&url, &provider.issuer, "alice")?;
    ensure!(
        back.starts_with(callback) && back.contains("code=") && back.contains("state=st4te"),
        "{back}"
    );
    Ok(())
}
