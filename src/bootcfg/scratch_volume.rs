//! `profile create --b2c --scratch-volume NAME[:OPTIONS]`: a boot2container
//! volume mirrored to the machine's scratch bucket. The profile's `secrets`
//! gets the `b2c.minio` alias (endpoint and key) and the `b2c.volume`
//! mirror; the script only fetches them through `$secrets_url`.
//!
//! Options are checked against what boot2container's `setup_volume` and its
//! hook conditions accept (`init.sh`); `mirror`, `pull_from` and `push_to`
//! are bootgate's to set.

use std::fmt;
use std::str::FromStr;

/// The `mcli` alias the secrets define for the store.
pub const ALIAS: &str = "bootgate";

/// Options used when none are given: pull at start, push every change,
/// mirror deletions, keep attributes.
pub const DEFAULT_OPTIONS: &str =
    "pull_on=pipeline_start,push_on=changes,overwrite,preserve,remove";

const FLAGS: [&str; 4] = ["overwrite", "remove", "preserve", "fscrypt_reset_key"];
const VALUED: [&str; 7] = [
    "filesystem",
    "pull_on",
    "push_on",
    "expiration",
    "exclude",
    "encrypt_key",
    "fscrypt_key",
];
const CONDITIONS: [&str; 5] = [
    "pipeline_start",
    "container_start",
    "container_end",
    "pipeline_end",
    "changes",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchVolume {
    pub name: String,
    pub options: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--scratch-volume {spec:?}: {why}")]
pub struct VolumeError {
    spec: String,
    why: String,
}

impl FromStr for ScratchVolume {
    type Err = VolumeError;

    fn from_str(spec: &str) -> Result<Self, VolumeError> {
        let fail = |why: String| VolumeError {
            spec: spec.to_string(),
            why,
        };
        let (name, options) = spec.split_once(':').unwrap_or((spec, DEFAULT_OPTIONS));
        let name_ok = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(fail(format!(
                "{name:?} is not a volume name: use letters, digits, `_`, `.`, `-`"
            )));
        }
        let mut checked = Vec::new();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            if option
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"\"$".contains(&b))
            {
                return Err(fail(format!(
                    "option {option:?} holds a space, quote or `$`, which cannot travel on a kernel command line"
                )));
            }
            let (key, value) = match option.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (option, None),
            };
            match (key, value) {
                ("mirror" | "pull_from" | "push_to", _) => {
                    return Err(fail(format!(
                        "{key} is set by bootgate to the machine's bucket; leave it out"
                    )));
                }
                (flag, None) if FLAGS.contains(&flag) => {}
                ("pull_on" | "push_on", Some(conditions)) => {
                    for c in conditions.split('|') {
                        if !CONDITIONS.contains(&c) {
                            return Err(fail(format!(
                                "{key}: unknown condition {c:?}; boot2container knows {}",
                                CONDITIONS.join(", ")
                            )));
                        }
                    }
                }
                ("expiration", Some(v)) if !["never", "pipeline_end"].contains(&v) => {
                    return Err(fail(format!(
                        "expiration must be never or pipeline_end (got {v:?})"
                    )));
                }
                (key, Some(v)) if VALUED.contains(&key) && !v.is_empty() => {}
                _ => {
                    return Err(fail(format!(
                        "unknown option {option:?}; boot2container accepts {}, and {}=VALUE",
                        FLAGS.join(", "),
                        VALUED.join("=, ")
                    )));
                }
            }
            checked.push(option.to_string());
        }
        if !checked
            .iter()
            .any(|o| o.starts_with("pull_on=") || o.starts_with("push_on="))
        {
            return Err(fail(
                "give pull_on= or push_on= (or no options at all for the defaults), or the volume is never synchronised".into(),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            options: checked,
        })
    }
}

impl fmt::Display for ScratchVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.options.join(","))
    }
}

impl ScratchVolume {
    /// The profile's `secrets` template: boot2container parameters that
    /// bootgate fills in per machine and hands over once, through `$secrets_url`.
    pub fn secrets(&self) -> String {
        let mut volume = vec![self.name.clone(), format!("mirror={ALIAS}/$s3_bucket_name")];
        volume.extend(self.options.iter().cloned());
        format!(
            "b2c.minio=\"{ALIAS},$s3_endpoint,$s3_access_key_id,$s3_access_key\" b2c.volume=\"{}\"\n",
            volume.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_explicit_options() {
        let v: ScratchVolume = "job".parse().unwrap();
        assert_eq!(v.options.join(","), DEFAULT_OPTIONS);
        assert_eq!(
            v.secrets(),
            "b2c.minio=\"bootgate,$s3_endpoint,$s3_access_key_id,$s3_access_key\" \
             b2c.volume=\"job,mirror=bootgate/$s3_bucket_name,pull_on=pipeline_start,push_on=changes,overwrite,preserve,remove\"\n"
        );
        let v: ScratchVolume = "cache:pull_on=pipeline_start|container_start,push_on=pipeline_end,expiration=pipeline_end,exclude=*.tmp"
            .parse()
            .unwrap();
        assert_eq!(v.options.len(), 4);
    }

    #[test]
    fn refuses_what_boot2container_would_not_take() {
        for bad in [
            "",
            "-x",
            "a b",
            "job:mirror=x/y,push_on=changes",
            "job:pull_on=boot",
            "job:expiration=tomorrow",
            "job:push_on=changes,compress",
            "job:push_on=changes,exclude=",
            "job:push_on=changes,exclude=$x",
            "job:overwrite",
        ] {
            assert!(bad.parse::<ScratchVolume>().is_err(), "{bad:?} accepted");
        }
    }
}
