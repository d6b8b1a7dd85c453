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
//!
//! The URLs are understood in every build. The store, object_store's S3 client with its
//! HTTP and TLS stack, comes with feature `s3` (`remote/store.rs`): a build without it
//! says what to rebuild.

#[cfg(feature = "s3")]
mod store;
#[cfg(feature = "s3")]
pub use store::{s3_store, Retries};

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
}
