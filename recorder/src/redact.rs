//! Secrets kept out of the `exec` table's argv and envp (by default; `--argv full` and
//! `--envp full` keep everything).
//!
//! Three rules, each over one NUL-separated string at a time:
//! - **names**: `NAME=value` where NAME (leading dashes dropped, so `--password=x` too)
//!   looks like a secret ([`is_secret_name`]): the value becomes [`REDACTED`]. In envp
//!   every string is `NAME=value`; in argv this is how `env`, `make` and `--flag=value`
//!   pass them.
//! - **flags** (argv only): a flag whose name looks like a password ([`is_secret_flag`]),
//!   given alone (`--password x`, `-passin x`): the next string becomes [`REDACTED`],
//!   unless it starts with `-` (another flag: `mysql --password -h db` prompts).
//! - **urls**: credentials inside a URL, `scheme://user:pass@host` anywhere in a string:
//!   the password becomes [`REDACTED`] (`postgres://u:<redacted>@h/db`); a user without a
//!   password is kept (`ssh://git@host`).
//!
//! Not covered (documented in README): a secret passed as a bare positional argument or
//! after a flag this list does not know (`-p` of mysql and sshpass), and secrets inside
//! scripts given with `-c`/`-e`, unless written as `NAME=value`.

/// The value written in place of a redacted one.
pub const REDACTED: &str = "<redacted>";

/// A name is a secret's when it contains one of these (ASCII case-insensitive)...
pub const SECRET_NAME_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
    "COOKIE",
    "SESSION",
    "AUTH",
    "SIGNATURE",
    "CERT",
    "PWD",
];
/// ...or starts with one of these.
pub const SECRET_NAME_PREFIXES: &[&str] = &["AWS_", "AZURE_", "GCP_", "GOOGLE_", "GH_", "GITHUB_", "NPM_", "VAULT_"];
/// Names that contain a part above but are well-known harmless variables.
pub const NOT_SECRET_NAMES: &[&str] = &["PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY", "KEYTIMEOUT"];
/// A flag given alone takes a secret as the next argument when its name (dashes dropped)
/// contains one of these...
pub const SECRET_FLAG_PARTS: &[&str] =
    &["PASSWORD", "PASSWD", "PASSPHRASE", "TOKEN", "SECRET", "APIKEY", "API-KEY", "API_KEY"];
/// ...or is one of these (openssl's `-passin`/`-passout`, `--pass`).
pub const SECRET_FLAG_NAMES: &[&str] = &["PASS", "PASSIN", "PASSOUT"];

/// Which rules apply to a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub names: bool,
    pub flags: bool,
    pub urls: bool,
}

impl Rules {
    pub const OFF: Rules = Rules { names: false, flags: false, urls: false };
    pub const ENVP: Rules = Rules { names: true, flags: false, urls: true };
    pub const ARGV: Rules = Rules { names: true, flags: true, urls: true };
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn strip_dashes(name: &[u8]) -> &[u8] {
    let n = name.iter().take_while(|&&c| c == b'-').count();
    &name[n..]
}

/// Whether a variable (or `--flag=`) of this name gets its value redacted.
pub fn is_secret_name(name: &[u8]) -> bool {
    let name = strip_dashes(name);
    if NOT_SECRET_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes())) {
        return false;
    }
    SECRET_NAME_PREFIXES.iter().any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
        || SECRET_NAME_PARTS.iter().any(|p| contains_ci(name, p))
}

/// Whether a flag given alone (`--password`, no `=`) takes a secret as the next argument.
pub fn is_secret_flag(flag: &[u8]) -> bool {
    if flag.first() != Some(&b'-') {
        return false;
    }
    let name = strip_dashes(flag);
    !name.is_empty()
        && (SECRET_FLAG_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
            || SECRET_FLAG_PARTS.iter().any(|p| contains_ci(name, p)))
}

/// Redacts one list (an argv or an envp), string by string, in order: the flags rule
/// looks at the string before.
#[derive(Debug)]
pub struct Redactor {
    rules: Rules,
    after_secret_flag: bool,
}

impl Redactor {
    pub fn new(rules: Rules) -> Redactor {
        Redactor { rules, after_secret_flag: false }
    }

    /// When `item` holds a secret, writes it redacted into `out` (cleared first) and
    /// returns true; else returns false and `item` stands as it is.
    pub fn redact(&mut self, item: &[u8], out: &mut Vec<u8>) -> bool {
        let after_flag = std::mem::take(&mut self.after_secret_flag);
        if self.rules == Rules::OFF {
            return false;
        }
        out.clear();
        if after_flag && item.first() != Some(&b'-') {
            out.extend_from_slice(REDACTED.as_bytes());
            return true;
        }
        let eq = item.iter().position(|&c| c == b'=');
        if self.rules.flags && eq.is_none() && is_secret_flag(item) {
            self.after_secret_flag = true;
        }
        if let Some(i) = eq {
            if self.rules.names && is_secret_name(&item[..i]) {
                out.extend_from_slice(&item[..=i]);
                out.extend_from_slice(REDACTED.as_bytes());
                return true;
            }
        }
        self.rules.urls && redact_urls(item, out)
    }
}

/// Writes `item` into `out` with the password of every `scheme://user:pass@host` in it
/// replaced; returns whether there was one.
fn redact_urls(item: &[u8], out: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut done = 0; // item[..done] is in `out` (once changed)
    let mut from = 0;
    while let Some(at) = find(&item[from..], b"://").map(|i| i + from) {
        let scheme_ok = at > 0 && item[at - 1].is_ascii_alphanumeric();
        let start = at + 3;
        // The authority ends at the path, query, fragment, or a space.
        let end = item[start..]
            .iter()
            .position(|&c| matches!(c, b'/' | b'?' | b'#' | b' ' | b'\t' | b'\n' | b'"' | b'\''))
            .map_or(item.len(), |i| i + start);
        let authority = &item[start..end];
        if let (true, Some(last_at)) = (scheme_ok, authority.iter().rposition(|&c| c == b'@')) {
            if let Some(colon) = authority[..last_at].iter().position(|&c| c == b':') {
                let (pw_start, pw_end) = (start + colon + 1, start + last_at);
                out.extend_from_slice(&item[done..pw_start]);
                out.extend_from_slice(REDACTED.as_bytes());
                done = pw_end;
                changed = true;
            }
        }
        from = end.max(start);
    }
    if changed {
        out.extend_from_slice(&item[done..]);
    }
    changed
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rules: Rules, items: &[&str]) -> Vec<String> {
        let mut r = Redactor::new(rules);
        let mut out = Vec::new();
        items
            .iter()
            .map(
                |i| {
                    if r.redact(i.as_bytes(), &mut out) {
                        String::from_utf8(out.clone()).unwrap()
                    } else {
                        i.to_string()
                    }
                },
            )
            .collect()
    }

    #[test]
    fn secret_names() {
        for s in ["GITHUB_TOKEN", "api_key", "DB_PASSWORD", "AWS_REGION", "MY_SECRET_THING", "Cookie", "--password"] {
            assert!(is_secret_name(s.as_bytes()), "{s}");
        }
        for s in ["PATH", "HOME", "PWD", "LANG", "SSH_AUTH_SOCK", "TERM", "--verbose"] {
            assert!(!is_secret_name(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn argv_of_env_with_secrets() {
        assert_eq!(
            run(Rules::ARGV, &["env", "MY_API_KEY=s3cr3t", "DB_PASSWORD=hunter2", "LANG=C", "/bin/true"]),
            ["env", "MY_API_KEY=<redacted>", "DB_PASSWORD=<redacted>", "LANG=C", "/bin/true"]
        );
    }

    #[test]
    fn password_flags() {
        assert_eq!(
            run(Rules::ARGV, &["tool", "--password=x", "--password", "y", "--api-key", "k", "-v", "out"]),
            ["tool", "--password=<redacted>", "--password", "<redacted>", "--api-key", "<redacted>", "-v", "out"]
        );
        // A flag after a password flag is a flag: mysql --password prompts.
        assert_eq!(run(Rules::ARGV, &["mysql", "--password", "-h", "db"]), ["mysql", "--password", "-h", "db"]);
        assert_eq!(
            run(Rules::ARGV, &["openssl", "rsa", "-passin", "pass:x", "-in", "k.pem"]),
            ["openssl", "rsa", "-passin", "<redacted>", "-in", "k.pem"]
        );
        // envp has no flags: a variable is never taken as one.
        assert_eq!(run(Rules::ENVP, &["--password", "y"]), ["--password", "y"]);
    }

    #[test]
    fn url_credentials() {
        assert_eq!(
            run(Rules::ENVP, &["DATABASE_URL=postgres://u:pa55@h/db", "REPO=ssh://git@host/r", "HOME=/root"]),
            ["DATABASE_URL=postgres://u:<redacted>@h/db", "REPO=ssh://git@host/r", "HOME=/root"]
        );
        assert_eq!(
            run(
                Rules::ARGV,
                &["git", "clone", "https://bob:t0k:en@x.org/r.git", "--mirror=https://a:b@m?q=1 s3://k:v@b"]
            ),
            [
                "git",
                "clone",
                "https://bob:<redacted>@x.org/r.git",
                "--mirror=https://a:<redacted>@m?q=1 s3://k:<redacted>@b"
            ]
        );
        // An '@' past the authority is the path's; no scheme, no URL.
        assert_eq!(
            run(Rules::ARGV, &["http://h/a:b@c", "://u:p@h", "mailto:x@y"]),
            ["http://h/a:b@c", "://u:p@h", "mailto:x@y"]
        );
    }

    #[test]
    fn off_keeps_everything() {
        let items = ["env", "TOKEN=x", "--password", "y", "http://u:p@h"];
        assert_eq!(run(Rules::OFF, &items), items);
    }
}
