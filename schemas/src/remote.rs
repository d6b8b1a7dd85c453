//! Where a capture lives when it is not a local directory: `s3://bucket/prefix` URLs, and
//! the S3-compatible store they name, configured the way the AWS tools are. Both binaries
//! go through here: the recorder's `--upload` and capq's `--dir s3://`.
//!
//! Settings, the first found wins:
//! - the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` (an S3-compatible server;
//!   `http://` allows plain HTTP), and the rest `object_store` reads (`AWS_ALLOW_HTTP`,
//!   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, the instance and web-identity credentials);
//! - the shared files, profile `AWS_PROFILE` (or `default`): `~/.aws/credentials`
//!   (`AWS_SHARED_CREDENTIALS_FILE`) for the keys, `~/.aws/config` (`AWS_CONFIG_FILE`) for
//!   `region` and `endpoint_url`;
//! - region `us-east-1`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// An `s3://bucket/prefix` URL: the bucket and the key prefix (no leading or trailing `/`;
/// empty for the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    /// `Ok(None)` for anything not `s3://` (a local path); `Err` for a malformed one.
    pub fn parse(s: &str) -> Result<Option<S3Url>, String> {
        let Some(rest) = s.strip_prefix("s3://") else {
            if s.contains("://") {
                return Err(format!(
                    "{s}: not an s3:// URL: S3 and S3-compatible stores are the object stores supported"
                ));
            }
            return Ok(None);
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok {
            return Err(format!(
                "{s}: '{bucket}' is not a bucket name (3 to 63 of a-z, 0-9, '.', '-'); write s3://BUCKET/PREFIX"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|c| c == "." || c == "..") || prefix.contains("//") {
            return Err(format!("{s}: the prefix may not hold empty, '.' or '..' components"));
        }
        Ok(Some(S3Url { bucket: bucket.to_string(), prefix: prefix.to_string() }))
    }

    /// The object key of `rel` (a `/`-separated path inside the capture).
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// One `[section]` of an INI-style AWS file: its `key = value` lines.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// The settings of profile `profile` in the shared credentials and config files' texts.
fn profile_settings(credentials: &str, config: &str, profile: &str) -> Vec<(String, String)> {
    let mut out = ini_section(credentials, profile);
    let section = if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
    out.extend(ini_section(config, &section));
    out
}

fn home_file(var: &str, rel: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rel)))
}

/// Which requests a store retries inside one call, and for how long.
#[derive(Debug, Clone, Copy)]
pub enum Retries {
    /// A query: object_store's defaults (10 tries, within 3 minutes).
    Patient,
    /// An uploader that retries on its own, with its own back-off: 2 tries within 10 s,
    /// so an unreachable server is noticed, counted and said.
    Brief,
}

/// The store `url` names, configured as the module's header says.
pub fn s3_store(url: &S3Url, retries: Retries) -> Result<Arc<AmazonS3>, String> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let read = |p: Option<PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let credentials = read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"));
    let config = read(home_file("AWS_CONFIG_FILE", ".aws/config"));
    for (k, v) in profile_settings(&credentials, &config, &profile) {
        let key = match k.as_str() {
            "aws_access_key_id" => AmazonS3ConfigKey::AccessKeyId,
            "aws_secret_access_key" => AmazonS3ConfigKey::SecretAccessKey,
            "aws_session_token" => AmazonS3ConfigKey::Token,
            "region" => AmazonS3ConfigKey::Region,
            "endpoint_url" => AmazonS3ConfigKey::Endpoint,
            _ => continue,
        };
        // The environment wins over the files.
        let in_env = b.get_config_value(&key).is_some()
            || (key == AmazonS3ConfigKey::Region && b.get_config_value(&AmazonS3ConfigKey::DefaultRegion).is_some());
        if !in_env {
            b = b.with_config(key, v);
        }
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none()
        && b.get_config_value(&AmazonS3ConfigKey::DefaultRegion).is_none()
    {
        b = b.with_region("us-east-1");
    }
    if let Retries::Brief = retries {
        let backoff =
            BackoffConfig { init_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(2), base: 2.0 };
        // Uploads carry their SHA-256, checked by the store before it keeps the object.
        b = b
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
            .with_retry(RetryConfig { backoff, max_retries: 2, retry_timeout: Duration::from_secs(10) })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
    }
    // After the client options, which would reset it.
    if b.get_config_value(&AmazonS3ConfigKey::Endpoint).is_some_and(|e| e.starts_with("http://")) {
        b = b.with_allow_http(true);
    }
    b.build().map(Arc::new).map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = S3Url::parse("s3://fleet-capture/prod/eu/").unwrap().unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("fleet-capture", "prod/eu"));
        assert_eq!(u.key("exec/host=a/x.parquet"), "prod/eu/exec/host=a/x.parquet");
        let root = S3Url::parse("s3://bkt").unwrap().unwrap();
        assert_eq!(root.key("exec/x.parquet"), "exec/x.parquet");
        assert_eq!(S3Url::parse("./capture").unwrap(), None);
        for bad in ["s3://B/x", "s3://a/x", "s3:///x", "gs://bucket/x", "s3://bkt/a/../b", "s3://bkt/a//b"] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_files_by_profile() {
        let creds = "[default]\naws_access_key_id = AK1\n[ci]\n# a comment\naws_access_key_id=AK2\nAWS_SECRET_ACCESS_KEY = s2\n";
        let config = "[default]\nregion = eu-west-1\n[profile ci]\nendpoint_url = http://127.0.0.1:9000\n";
        let get = |p: &str| profile_settings(creds, config, p);
        assert_eq!(
            get("default"),
            vec![("aws_access_key_id".into(), "AK1".into()), ("region".into(), "eu-west-1".into())]
        );
        assert_eq!(
            get("ci"),
            vec![
                ("aws_access_key_id".into(), "AK2".into()),
                ("aws_secret_access_key".into(), "s2".into()),
                ("endpoint_url".into(), "http://127.0.0.1:9000".into())
            ]
        );
        assert!(get("none").is_empty());
    }
}
