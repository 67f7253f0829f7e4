//! Access tokens: short-lived JWTs signed with ES256 (ECDSA P-256), carrying a
//! `kid`. The verifier keeps a fixed map `kid → public key` (current and
//! previous key, for rotation); tokens naming any other `kid` are refused, and
//! `jku`/`x5u`/`jwk` headers are never followed (jsonwebtoken ignores them; we
//! additionally refuse tokens that carry them). When the login was made with a
//! client certificate, the token binds it: `cnf.x5t#S256` is the certificate's
//! SHA-256 thumbprint (RFC 8705), checked against the connection on every use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// File name of the current signing key inside the key directory.
pub const CURRENT_KEY_FILE: &str = "token-signing-current.pem";
/// File name of the previous signing key (kept for verification during rotation).
pub const PREVIOUS_KEY_FILE: &str = "token-signing-previous.pem";

/// RFC 8705 confirmation claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url (no padding) SHA-256 of the client certificate's DER.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user id, as a decimal string.
    pub sub: String,
    /// The session id.
    pub sid: i64,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Expires (Unix seconds).
    pub exp: u64,
    /// Certificate binding, when the login used a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// Anything else: bad signature, unknown `kid`, wrong `alg`, `iss` or
    /// `aud`, missing or mistyped claims, forbidden headers.
    #[error("invalid token")]
    Invalid,
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` to write and require.
    pub issuer: String,
    /// `aud` to write and require.
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_ttl_secs: u64,
    /// Clock-skew leeway for `exp`/`nbf`, seconds.
    pub leeway_secs: u64,
}

/// Signing key and verification keys.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    settings: TokenSettings,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .field(
                "verification_kids",
                &self.decoding.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn key_pair(pem: &str) -> Result<(String, EncodingKey, DecodingKey), String> {
    let secret = p256::SecretKey::from_pkcs8_pem(pem)
        .map_err(|_| "signing key is not a PKCS#8 P-256 key".to_owned())?;
    let public_der = secret
        .public_key()
        .to_public_key_der()
        .map_err(|e| format!("public key encoding: {e}"))?;
    let public_pem = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("public key encoding: {e}"))?;
    let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public_der.as_bytes())[..12]);
    let encoding =
        EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("signing key: {e}"))?;
    let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes())
        .map_err(|e| format!("verification key: {e}"))?;
    Ok((kid, encoding, decoding))
}

/// Generates a new P-256 signing key as PKCS#8 PEM.
pub fn generate_key_pem() -> Result<String, String> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    secret
        .to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.to_string())
        .map_err(|e| format!("key encoding: {e}"))
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl TokenKeys {
    /// Loads the signing keys from `dir`, creating a current key on first use.
    /// Returns the keys and whether a key was created.
    pub fn load_or_create(
        dir: &Path,
        settings: TokenSettings,
    ) -> Result<(TokenKeys, bool), String> {
        let existed = dir.exists();
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        #[cfg(unix)]
        if !existed {
            // A directory we create is private to the service account; one the
            // operator made is left as they set it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
        }
        let current = dir.join(CURRENT_KEY_FILE);
        let mut created = false;
        if !current.exists() {
            write_private(&current, &generate_key_pem()?)?;
            created = true;
        }
        let current_pem = std::fs::read_to_string(&current)
            .map_err(|e| format!("cannot read {}: {e}", current.display()))?;
        let previous = dir.join(PREVIOUS_KEY_FILE);
        let previous_pem = if previous.exists() {
            Some(
                std::fs::read_to_string(&previous)
                    .map_err(|e| format!("cannot read {}: {e}", previous.display()))?,
            )
        } else {
            None
        };
        Ok((
            TokenKeys::from_pems(&current_pem, previous_pem.as_deref(), settings)?,
            created,
        ))
    }

    /// Builds the keys from PEM text.
    pub fn from_pems(
        current: &str,
        previous: Option<&str>,
        settings: TokenSettings,
    ) -> Result<TokenKeys, String> {
        super::jwt_crypto::install();
        let (kid, encoding, decoding) = key_pair(current)?;
        let mut map = HashMap::new();
        map.insert(kid.clone(), decoding);
        if let Some(prev) = previous {
            let (pkid, _, pdec) = key_pair(prev)?;
            map.insert(pkid, pdec);
        }
        Ok(TokenKeys {
            kid,
            encoding,
            decoding: map,
            settings,
        })
    }

    /// The current `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Settings in force.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        user_id: i64,
        session_id: i64,
        thumbprint: Option<&str>,
        now_secs: u64,
    ) -> Result<(String, AccessClaims), String> {
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user_id.to_string(),
            sid: session_id,
            iat: now_secs,
            nbf: now_secs,
            exp: now_secs + self.settings.access_ttl_secs,
            cnf: thumbprint.map(|t| Confirmation {
                x5t_s256: t.to_owned(),
            }),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| format!("signing: {e}"))?;
        Ok((token, claims))
    }

    /// Verifies a token's signature, `kid`, `alg`, `iss`, `aud`, `exp`, `nbf`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::ES256
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.jwk.is_some()
        {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::Invalid)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = self.settings.leeway_secs;
        v.validate_nbf = true;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.audience]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// base64url (no padding) SHA-256 of a certificate's DER: the RFC 8705 thumbprint.
pub fn thumbprint(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "kizuna-test".into(),
            audience: "kizuna-api".into(),
            access_ttl_secs: 600,
            leeway_secs: 5,
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn keys() -> TokenKeys {
        TokenKeys::from_pems(&generate_key_pem().unwrap(), None, settings()).unwrap()
    }

    fn forge(header: &serde_json::Value, claims: &serde_json::Value) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(b"sig")
        )
    }

    #[test]
    fn a_token_round_trips_with_its_binding() {
        let k = keys();
        let (t, c) = k.issue(7, 3, Some("thumb"), now()).unwrap();
        let back = k.verify(&t).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.cnf.unwrap().x5t_s256, "thumb");
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.kid.as_deref(), Some(k.kid()));
    }

    #[test]
    fn expired_tokens_are_refused_after_the_leeway() {
        let k = keys();
        let (t, _) = k.issue(7, 3, None, now() - 600 - 6).unwrap();
        assert_eq!(k.verify(&t), Err(TokenError::Expired));
        let (t, _) = k.issue(7, 3, None, now() - 600 + 30).unwrap();
        assert!(k.verify(&t).is_ok());
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let k = keys();
        let (t, _) = k.issue(7, 3, None, now() + 60).unwrap();
        assert_eq!(k.verify(&t), Err(TokenError::Invalid));
    }

    #[test]
    fn another_key_unknown_kid_and_alg_none_are_refused() {
        let k = keys();
        let other = keys();
        let (t, _) = other.issue(7, 3, None, now()).unwrap();
        assert_eq!(k.verify(&t), Err(TokenError::Invalid));
        let claims = serde_json::json!({"iss":"kizuna-test","aud":"kizuna-api","sub":"7","sid":3,"iat":now(),"nbf":now(),"exp":now()+600});
        let none = forge(&serde_json::json!({"alg":"none","kid":k.kid()}), &claims);
        assert_eq!(k.verify(&none), Err(TokenError::Invalid));
        let hs = forge(&serde_json::json!({"alg":"HS256","kid":k.kid()}), &claims);
        assert_eq!(k.verify(&hs), Err(TokenError::Invalid));
        let jku = forge(
            &serde_json::json!({"alg":"ES256","kid":k.kid(),"jku":"https://evil/jwks"}),
            &claims,
        );
        assert_eq!(k.verify(&jku), Err(TokenError::Invalid));
    }

    #[test]
    fn the_previous_key_still_verifies_during_rotation() {
        let old = generate_key_pem().unwrap();
        let new = generate_key_pem().unwrap();
        let before = TokenKeys::from_pems(&old, None, settings()).unwrap();
        let (t, _) = before.issue(1, 1, None, now()).unwrap();
        let after = TokenKeys::from_pems(&new, Some(&old), settings()).unwrap();
        assert!(after.verify(&t).is_ok());
        assert_ne!(after.kid(), before.kid());
    }

    #[test]
    fn keys_are_created_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = TokenKeys::load_or_create(dir.path(), settings()).unwrap();
        assert!(created);
        let (b, created) = TokenKeys::load_or_create(dir.path(), settings()).unwrap();
        assert!(!created);
        assert_eq!(a.kid(), b.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CURRENT_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
