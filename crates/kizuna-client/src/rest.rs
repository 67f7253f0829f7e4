//! REST calls.

use crate::{Client, ClientError, Result};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::{SessionId, UserId};
use serde::Deserialize;
use serde_json::Value;

/// Tokens returned by login and refresh.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    /// Access token.
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: u64,
    /// Refresh token.
    pub refresh_token: String,
    /// Session.
    pub session_id: SessionId,
    /// User.
    pub user_id: UserId,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    code: ErrorCode,
    message: String,
}

async fn parse(resp: reqwest::Response) -> Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("non-JSON body: {e}")))?
    };
    if status >= 400 {
        let body: ErrorBody = serde_json::from_value(value)
            .map_err(|e| ClientError::Protocol(format!("error body: {e}")))?;
        return Err(ClientError::Server {
            status: Some(status),
            code: body.code,
            message: body.message,
        });
    }
    Ok((status, value))
}

impl Client {
    /// `POST path` with a JSON body (and a bearer token). Returns status and body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}{}", self.base, path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        parse(req.send().await?).await
    }

    /// `POST path` with raw bytes and a content type (for malformed-input tests).
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        parse(req.send().await?).await
    }

    /// `PATCH path` with a JSON body and a bearer token.
    pub async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.patch(format!("{}{}", self.base, path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        parse(req.send().await?).await
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        parse(req.send().await?).await
    }

    /// `GET path` answered with text (CSV or JSON-lines exports): status,
    /// `Content-Type` and body. Error answers are parsed as usual.
    pub async fn get_text(&self, path: &str, token: Option<&str>) -> Result<(u16, String, String)> {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        if resp.status().as_u16() >= 400 {
            return parse(resp)
                .await
                .map(|(s, v)| (s, String::new(), v.to_string()));
        }
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((status, content_type, resp.text().await?))
    }

    /// `DELETE path` with a bearer token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
        let mut req = self.http.delete(format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        parse(req.send().await?).await
    }

    /// Logs in.
    pub async fn login(&self, login: &str, password: &str) -> Result<Tokens> {
        let (_, v) = self
            .post(
                "/v1/auth/login",
                None,
                &serde_json::json!({"login": login, "password": password}),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("login answer: {e}")))
    }

    /// Exchanges a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        let (_, v) = self
            .post(
                "/v1/auth/refresh",
                None,
                &serde_json::json!({"refresh_token": refresh_token}),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("refresh answer: {e}")))
    }

    /// Logs out (ends the session everywhere it is used).
    pub async fn logout(&self, access_token: &str) -> Result<()> {
        self.post("/v1/auth/logout", Some(access_token), &Value::Null)
            .await
            .map(|_| ())
    }
}
