//! One-time secrets: rendering `boot.ipxe` mints a token (`$secrets_url`) that
//! lets whoever holds it fetch the machine's rendered `secrets` file exactly
//! once, within the TTL, without a client certificate (meant for
//! boot2container's `b2c.extra_args_url`). A request that does present a
//! client certificate must present the minting machine's: another machine's
//! is refused and the token stays valid for its owner.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::bootcfg::template::Vars;
use crate::names::Fingerprint;

/// Live tokens kept per machine; a machine that loops on its script cannot
/// grow the store without bound.
const MAX_TOKENS_PER_MACHINE: usize = 8;

/// What a token grants: rendering this machine's secrets with these variables.
#[derive(Debug, Clone)]
pub struct SecretsGrant {
    pub fingerprint: Fingerprint,
    pub vars: Vars,
}

/// What redeeming a token gave.
#[derive(Debug)]
pub enum Redemption {
    /// The token was live and is now spent.
    Granted(SecretsGrant),
    /// No such token, or it expired.
    Unknown,
    /// Another certificate than the owner's was presented; the token is kept.
    NotTheOwner { owner: Fingerprint },
}

#[cfg(test)]
impl Redemption {
    fn granted(self) -> Option<SecretsGrant> {
        match self {
            Redemption::Granted(grant) => Some(grant),
            _ => None,
        }
    }
}

struct Entry {
    grant: SecretsGrant,
    minted: Instant,
}

pub struct SecretStore {
    /// The TTL in milliseconds; a configuration reload changes it for every
    /// token, minted before or after.
    ttl_millis: AtomicU64,
    tokens: Mutex<HashMap<String, Entry>>,
}

impl SecretStore {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl_millis: AtomicU64::new(millis(ttl)),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_millis.load(Ordering::Relaxed))
    }

    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_millis.store(millis(ttl), Ordering::Relaxed);
    }

    /// Mints a fresh token: 256 random bits, hex.
    pub fn mint(&self, grant: SecretsGrant) -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let (now, ttl) = (Instant::now(), self.ttl());
        let mut tokens = self.tokens.lock().expect("secrets lock");
        tokens.retain(|_, e| now.duration_since(e.minted) < ttl);
        let mut mine: Vec<(Instant, String)> = tokens
            .iter()
            .filter(|(_, e)| e.grant.fingerprint == grant.fingerprint)
            .map(|(t, e)| (e.minted, t.clone()))
            .collect();
        if mine.len() >= MAX_TOKENS_PER_MACHINE {
            mine.sort();
            for (_, old) in &mine[..=mine.len() - MAX_TOKENS_PER_MACHINE] {
                tokens.remove(old);
            }
        }
        tokens.insert(token.clone(), Entry { grant, minted: now });
        token
    }

    /// Redeems a token for a request presenting the certificate with
    /// fingerprint `presenter` (`None`: no certificate). Granted, the token is
    /// gone; presented by another certificate, it is left for its owner.
    pub fn redeem(&self, token: &str, presenter: Option<&Fingerprint>) -> Redemption {
        let mut tokens = self.tokens.lock().expect("secrets lock");
        let Some(entry) = tokens.get(token) else {
            return Redemption::Unknown;
        };
        if entry.minted.elapsed() >= self.ttl() {
            tokens.remove(token);
            return Redemption::Unknown;
        }
        if let Some(presenter) = presenter
            && *presenter != entry.grant.fingerprint
        {
            return Redemption::NotTheOwner {
                owner: entry.grant.fingerprint.clone(),
            };
        }
        let entry = tokens.remove(token).expect("token present");
        Redemption::Granted(entry.grant)
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(digit: &str) -> Fingerprint {
        digit.repeat(40).parse().unwrap()
    }

    fn grant(digit: &str) -> SecretsGrant {
        SecretsGrant {
            fingerprint: fp(digit),
            vars: Vars::new(),
        }
    }

    #[test]
    fn tokens_work_once() {
        let store = SecretStore::new(Duration::from_secs(60));
        let token = store.mint(grant("a"));
        assert_eq!(token.len(), 64);
        assert!(store.redeem(&token, None).granted().is_some());
        assert!(store.redeem(&token, None).granted().is_none());
        assert!(store.redeem("nonsense", None).granted().is_none());
    }

    #[test]
    fn only_the_owner_or_no_certificate_redeems() {
        let store = SecretStore::new(Duration::from_secs(60));
        let token = store.mint(grant("a"));
        assert!(matches!(
            store.redeem(&token, Some(&fp("b"))),
            Redemption::NotTheOwner { owner } if owner == fp("a")
        ));
        assert!(store.redeem(&token, Some(&fp("a"))).granted().is_some());
        assert!(store.redeem(&token, Some(&fp("a"))).granted().is_none());
        let token = store.mint(grant("a"));
        assert!(store.redeem(&token, None).granted().is_some());
    }

    #[test]
    fn tokens_expire() {
        let store = SecretStore::new(Duration::from_millis(1));
        let token = store.mint(grant("a"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.redeem(&token, None).granted().is_none());
    }

    #[test]
    fn a_shorter_ttl_applies_to_live_tokens() {
        let store = SecretStore::new(Duration::from_secs(60));
        let token = store.mint(grant("a"));
        store.set_ttl(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.redeem(&token, None).granted().is_none());
        assert_eq!(store.ttl(), Duration::from_millis(1));
    }

    #[test]
    fn a_machine_keeps_a_bounded_number_of_tokens() {
        let store = SecretStore::new(Duration::from_secs(60));
        let tokens: Vec<_> = (0..20).map(|_| store.mint(grant("a"))).collect();
        let other = store.mint(grant("b"));
        let live = tokens
            .iter()
            .filter(|t| store.redeem(t, None).granted().is_some())
            .count();
        assert_eq!(live, MAX_TOKENS_PER_MACHINE);
        assert!(
            store
                .redeem(tokens.last().unwrap(), None)
                .granted()
                .is_none(),
            "already redeemed"
        );
        assert!(store.redeem(&other, None).granted().is_some());
    }
}
