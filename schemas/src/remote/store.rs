//! The S3 store an [`S3Url`] names, configured as [`super`] says (feature `s3`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::S3Url;

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
